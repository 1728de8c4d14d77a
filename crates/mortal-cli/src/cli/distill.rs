//! `mortal distill`: arguments and the command.

use super::*;
use mortal::learn::distill::{DistillLoss, Init, ScoreSource};

/// `mortal distill` arguments.
#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
pub struct DistillArgs {
    /// Teacher checkpoint directory (the --out of a `mortal train` run, any --algo).
    #[arg(long, value_name = "DIR")]
    pub teacher: PathBuf,
    /// Student chip: a preset (ideal, reram, pcm, harsh) or a spec TOML file.
    #[arg(long, value_name = "PRESET|FILE")]
    pub student_chip: String,
    /// Seed(s) of the student chip instance(s): comma-separated, ranges allowed (2-33 is a
    /// fleet of 32 chips, taught by one measurement of the teacher per view).
    #[arg(long, value_name = "N,N-M,...", default_value = "2")]
    pub student_seed: String,
    /// Variation multiplier of the student chip's spreads and noises.
    #[arg(long, allow_hyphen_values = true, default_value_t = 1.0)]
    pub variation: f64,
    /// Transfer-set size(s): the first N training images, comma-separated (a sweep with
    /// several sizes or seeds writes one directory per student and results.csv).
    #[arg(long, value_name = "N,N,...")]
    pub transfer: String,
    /// Never read the transfer images' true labels (the scratch baseline still uses them).
    #[arg(long)]
    pub unlabelled: bool,
    /// Where the transfer images come from: train (the training set's first N), hybrid
    /// or hybrid:S (N hybrids of the first S = 10 training images), noise (N smooth random
    /// images), or a .npy / IDX image file (its first N). Only `train` has labels.
    #[arg(
        long,
        value_name = "train|hybrid[:S]|noise|FILE",
        default_value = "train"
    )]
    pub transfer_source: String,
    /// Where the student starts: copy (the teacher's conductance targets and head, then
    /// distillation), scratch, or auto (copy where the teacher is an FF network of the
    /// student's shape, scratch otherwise). Default: auto.
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    /// Largest shift of each view, pixels (0 = off). Default: 0.
    #[arg(long)]
    pub jitter: Option<usize>,
    /// Fraction of views that mix two transfer images, λ uniform in [0, 1] (0 = off).
    /// Default: 0.
    #[arg(long, allow_hyphen_values = true)]
    pub mixup: Option<f32>,
    /// Teacher reads per view, averaged, each with fresh read noise. Default: 1.
    #[arg(long)]
    pub teacher_reads: Option<usize>,
    /// Epochs at the start of a copy-initialised student that train only its softmax
    /// head (the copied layers as they are), within --epochs. Default: 1.
    #[arg(long)]
    pub head_epochs: Option<usize>,
    /// Learning-rate multiplier of a copy-initialised student's layers after its head
    /// epochs (0 = only the head learns). Default: 0.1.
    #[arg(long, allow_hyphen_values = true)]
    pub copy_layer_lr: Option<f32>,
    /// Who picks the contrastive loss's negative labels: the teacher (its probabilities
    /// over the other labels) or the student (its own hard negatives). Default: teacher.
    #[arg(long, value_enum)]
    pub negatives: Option<mortal::learn::distill::NegativeSource>,
    /// Baselines beside the student: copy (only the copy, evaluated), basic (copy, scratch
    /// with labels) or full (also copy fine-tuned with labels, and the distilled student
    /// from the other starting point).
    /// Default: full for one student, basic for several.
    #[arg(long, value_enum)]
    pub baselines: Option<mortal::train::distill::BaselineSet>,
    /// The student's hidden layers (default: the teacher's); `--init copy` needs the
    /// teacher's shape.
    #[arg(long, value_name = "W,W,...")]
    pub student_layers: Option<String>,
    /// Temperature T of the soft targets and of the negatives' distribution.
    #[arg(long, allow_hyphen_values = true, default_value_t = mortal::learn::distill::DistillConfig::default().temperature)]
    pub temperature: f32,
    /// Teacher scores that define its distribution.
    #[arg(long, value_enum, default_value = mortal::learn::distill::DistillConfig::default().source.name())]
    pub source: ScoreSource,
    /// Weight of the true label mixed into targets and positives (0 = pure distillation).
    #[arg(long, allow_hyphen_values = true, default_value_t = mortal::learn::distill::DistillConfig::default().hard_weight)]
    pub hard_weight: f32,
    /// Temperature of the teacher distribution positives are drawn from (0 = its top-1).
    #[arg(long, allow_hyphen_values = true, default_value_t = mortal::learn::distill::DistillConfig::default().positive_temperature)]
    pub positive_temperature: f32,
    /// The student layers' loss: FF's own with teacher-drawn positives and negatives, or
    /// a per-layer KL of each layer's per-label goodness softmax to the teacher.
    #[arg(long, value_enum, default_value = mortal::learn::distill::DistillConfig::default().loss.name())]
    pub loss: DistillLoss,
    /// Temperature τ of each layer's per-label goodness softmax (--loss layer-kl), in
    /// squared-activity units of goodness.
    #[arg(long, allow_hyphen_values = true, default_value_t = mortal::learn::distill::DistillConfig::default().layer_temperature)]
    pub layer_temperature: f32,
    /// Weight β of the hints (--loss layer-kl): each student layer's activities are also
    /// pulled towards the teacher's on the same view, read from the teacher's chip every
    /// batch (needs an FF teacher with the student's widths; 0 = none). Default: 3 where
    /// the teacher can give them and the loss is layer-kl, none otherwise.
    #[arg(long, allow_hyphen_values = true)]
    pub hint_weight: Option<f32>,
    /// Student epochs (distillation and scratch alike).
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Each student sees at least this many samples: epochs = max(epochs, ceil(S / N)).
    #[arg(long, default_value_t = 0)]
    pub min_samples: usize,
    /// Student master seed (initial weights, data order, label draws, noise).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Use only the first N validation and test images.
    #[arg(long)]
    pub eval_limit: Option<usize>,
    /// Also measure error and agreement by goodness per label (11 passes per test image).
    #[arg(long)]
    pub goodness: bool,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Sweep figures: <STEM>-error.png and <STEM>-agreement.png (default
    /// <out>/plots/distill; `mortal plot <out>` redraws them there).
    #[arg(long, value_name = "STEM")]
    pub plot: Option<PathBuf>,
    /// Title of the sweep figures.
    #[arg(long, default_value = "Distillation between chips")]
    pub title: String,
}

pub(super) fn distill_command(
    args: &DistillArgs,
    data_dir: Option<&Path>,
    rep: &Reporter,
) -> Result<()> {
    use mortal::learn::distill::{Augment, DistillConfig, TransferSource};
    use mortal::train::distill as d;
    let transfers: Vec<usize> = parse_list("transfer", &args.transfer)?;
    if let Some(n) = transfers.iter().find(|n| **n == 0) {
        return Err(Error::param("transfer", n, "must be at least 1 image").into());
    }
    let seeds: Vec<u64> = parse_seeds("student-seed", &args.student_seed)?;
    if args.epochs == 0 {
        return Err(Error::param("epochs", 0, "must be at least 1").into());
    }
    // A student's epochs grow to cover min-samples; bound the plan before anything runs.
    for &n in &transfers {
        let epochs = d::student_epochs(args.epochs, args.min_samples, n);
        if epochs > d::MAX_STUDENT_EPOCHS {
            return Err(Error::param(
                "min-samples",
                args.min_samples,
                format!(
                    "with {n} transfer images a student would train {epochs} epochs (at most {} \
                     are allowed); lower --min-samples or raise --transfer",
                    d::MAX_STUDENT_EPOCHS
                ),
            )
            .into());
        }
    }
    let defaults = DistillConfig::default();
    let source_images = TransferSource::parse(&args.transfer_source)?;
    for &n in &transfers {
        source_images.validate(n)?;
    }
    let dcfg = DistillConfig {
        temperature: args.temperature,
        source: args.source,
        hard_weight: args.hard_weight,
        unlabelled: args.unlabelled || !source_images.labelled(),
        positive_temperature: args.positive_temperature,
        loss: args.loss,
        layer_temperature: args.layer_temperature,
        init: args.init.unwrap_or(defaults.init),
        augment: Augment {
            jitter: args.jitter.unwrap_or(defaults.augment.jitter),
            mixup: args.mixup.unwrap_or(defaults.augment.mixup),
        },
        teacher_reads: args.teacher_reads.unwrap_or(defaults.teacher_reads),
        head_epochs: args.head_epochs.unwrap_or(defaults.head_epochs),
        copy_layer_lr: args.copy_layer_lr.unwrap_or(defaults.copy_layer_lr),
        negatives: args.negatives.unwrap_or(defaults.negatives),
        hint_weight: args.hint_weight.or(defaults.hint_weight),
    };
    dcfg.validate()?;
    ChipConfig::from_source(&args.student_chip, 0, args.variation)?.validate()?;
    let student_layers = match &args.student_layers {
        Some(s) => Some(mortal::train::layers::parse_list(s)?),
        None => None,
    };
    let teacher = d::load_teacher(&args.teacher)?;
    d::check_source(teacher.meta.config.algo, dcfg.source)?;
    let mut data_cfg = teacher.meta.config.clone();
    data_cfg.train_limit = transfers
        .iter()
        .map(|&n| source_images.train_images(n))
        .max()
        .map(|n| n.max(1));
    data_cfg.eval_limit = args.eval_limit.or(data_cfg.eval_limit);
    let data = data_cfg.load_data(data_dir)?;
    let several = transfers.len() > 1 || seeds.len() > 1;
    let baselines = match args.baselines {
        Some(b) => b,
        None if several => d::BaselineSet::Basic,
        None => d::BaselineSet::Full,
    };
    let make = |n: usize, seed: u64| -> Result<d::DistillSettings, Error> {
        let chip = ChipConfig::from_source(&args.student_chip, seed, args.variation)?;
        let epochs = d::student_epochs(args.epochs, args.min_samples, n);
        let mut student = d::student_config(&teacher.meta.config, chip, epochs, args.seed, n);
        if let Some(layers) = &student_layers {
            student.layers = layers.clone();
            student.ff.eval_from = student.ff.eval_from.min(layers.len());
        }
        student.eval_limit = data_cfg.eval_limit;
        student.eval_every = 0;
        // `--init copy` with a teacher of another shape: refused before anything runs.
        d::resolve_init(dcfg.init, &teacher.meta.config, &student)?;
        Ok(d::DistillSettings {
            teacher: args.teacher.clone(),
            transfer: n,
            source_images: source_images.clone(),
            distill: dcfg.clone(),
            goodness: args.goodness,
            min_samples: args.min_samples,
            baselines,
            student,
        })
    };
    if !several {
        let shared = d::Teacher::new(&teacher, dcfg.source)?;
        let r = d::run(
            &make(transfers[0], seeds[0])?,
            &teacher,
            &shared,
            &data,
            &args.out,
            rep,
            None,
        )?;
        let pct = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.2}%", 100.0 * v));
        println!(
            "student {} #{} ({} {} transfer images, from {}): test error {:.2}%, agreement {:.2}%, KL {:.4} nats \
             | copy {:.2}% / {:.2}% | scratch {} / {} | copy + labels {} | other init {} | teacher {:.2}% (self-agreement {}){}",
            r.student_chip,
            r.student_seed,
            r.transfer,
            r.transfer_source,
            r.init.name(),
            100.0 * r.test_error,
            100.0 * r.agreement,
            r.kl,
            100.0 * r.copy_test_error,
            100.0 * r.copy_agreement,
            pct(r.scratch_test_error),
            pct(r.scratch_agreement),
            pct(r.copy_labels_test_error),
            pct(r.other_init_test_error),
            100.0 * r.teacher_test_error,
            pct(r.teacher_self_agreement),
            r.recovered
                .map_or(String::new(), |v| format!(" | recovered {v:.2}"))
        );
        let stem = args.out.join("plots").join("epochs");
        if let Some(png) = crate::figures::distill_epochs::epochs_figure(
            std::slice::from_ref(&args.out),
            &args.title,
            &stem,
        )? {
            println!("figure {}", png.display());
        }
    } else {
        use mortal::train::distill_sweep as ds;
        let mut students = Vec::new();
        for &n in &transfers {
            for &seed in &seeds {
                students.push(ds::Student {
                    name: format!("t{n}-s{seed}"),
                    settings: make(n, seed)?,
                });
            }
        }
        let tc = teacher.meta.config.chip.as_ref();
        let info = ds::SweepInfo {
            title: args.title.clone(),
            teacher: args.teacher.clone(),
            teacher_seed: teacher.meta.config.seed,
            teacher_chip_seed: tc.map(|c| c.chip_seed),
            students: students.iter().map(|s| s.name.clone()).collect(),
        };
        let rows = ds::sweep(&students, &info, &teacher, &data, &args.out, rep)?;
        let stem = args
            .plot
            .clone()
            .unwrap_or_else(|| args.out.join(ds::PLOTS).join("distill"));
        let mut figs = crate::figures::distill_sweep::figures(&rows, &args.title, &stem)?;
        figs.extend(crate::figures::distill_sweep::epochs_figures(
            &args.out,
            &rows,
            &args.title,
        )?);
        print!("{}", ds::table(&rows));
        for f in figs {
            println!("figure {}", f.display());
        }
    }
    println!("results written to {}", args.out.display());
    Ok(())
}
