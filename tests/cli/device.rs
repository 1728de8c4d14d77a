//! `mortal device response` end to end.

use crate::common::*;

#[test]
fn device_response_matches_the_committed_aihwkit_trajectory_and_draws_it() {
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "../fixtures/aihwkit-soft-bounds-up-down-0.3.json"
    ))
    .unwrap();
    let want: Vec<f64> = serde_json::from_value(fixture["trajectory"].clone()).unwrap();
    let out = run_ok(mortal().args([
        "device",
        "response",
        "--response",
        "soft-bounds",
        "--dw-min",
        "0.01",
        "--up-down",
        "0.3",
        "--start",
        "0.0",
        "--up",
        "100",
        "--down",
        "100",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<f64> = serde_json::from_value(v["w"].clone()).unwrap();
    assert_eq!(got.len(), 200);
    let dev = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(dev <= 1e-6, "max deviation {dev}");

    // Noise on: a band over devices, and a figure.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("resp.png");
    let out = run_ok(
        mortal()
            .args([
                "device",
                "response",
                "--preset",
                "reram",
                "--noise",
                "--devices",
                "20",
            ])
            .args(["--json", "--plot"])
            .arg(&png),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["std"].as_array().unwrap().len(), 200);
    assert!(v["std"][150].as_f64().unwrap() > 0.0);
    assert!(png.is_file());

    // Bad input: one line naming the parameter, exit 2.
    let (code, err) = run_err(mortal().args(["device", "response", "--param", "gama_up=1"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("gama_up"), "{err}");
    let (code, err) = run_err(mortal().args(["device", "response", "--response", "tanh-step"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tanh-step"), "{err}");
    // A negative shape spread, on the command line and in a chip spec.
    let (code, err) = run_err(mortal().args([
        "device",
        "response",
        "--response",
        "pow-step",
        "--param",
        "pow_gamma_dtod=-1",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--param pow_gamma_dtod"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.toml");
    std::fs::write(
        &spec,
        "[device]\nresponse = \"pow-step\"\n[device.shape]\npow_gamma_dtod = -1\n",
    )
    .unwrap();
    let (code, err) = run_err(mortal().args(["device", "response", "--spec"]).arg(&spec));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("device.shape.pow_gamma_dtod"), "{err}");
}
