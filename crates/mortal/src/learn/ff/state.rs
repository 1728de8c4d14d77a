//! The learner's host state in checkpoints and resumable states: the softmax head, the
//! peer-normalisation means, the optimisers, the update counter and (analog-native FF
//! with analog momentum) the fast arrays.

use super::FfLearner;
use crate::error::Result;

impl FfLearner {
    /// The host-side state worth saving: softmax head and peer-normalisation means.
    pub fn tensors(&self) -> Vec<crate::tensor::Tensor> {
        use crate::tensor::{from_mat, from_vec};
        let mut out = Vec::new();
        for (i, w) in self.head.weights.iter().enumerate() {
            out.push(from_mat(format!("head{i}.weight"), w));
        }
        out.push(from_vec("head.bias", &self.head.bias));
        for (l, m) in self.peer.iter().enumerate() {
            out.push(from_vec(format!("peer{l}"), m));
        }
        out
    }

    /// Everything a bit-identical continuation of training needs beyond the substrate:
    /// the head with its optimiser state, the peer-normalisation means, every layer's
    /// optimiser state and the update counter (sleep phases).
    pub fn resume_tensors(&self) -> Vec<crate::tensor::Tensor> {
        use crate::tensor::from_vec;
        let mut out = self.head.resume_tensors();
        for (l, m) in self.peer.iter().enumerate() {
            out.push(from_vec(format!("peer{l}"), m));
        }
        for (l, (w, b)) in self.opt_w.iter().zip(&self.opt_b).enumerate() {
            out.extend(w.state_tensors(&format!("opt{l}.weight")));
            out.extend(b.state_tensors(&format!("opt{l}.bias")));
        }
        // The counter as four exact 16-bit parts.
        let parts: Vec<f32> = (0..4)
            .map(|k| ((self.updates >> (16 * k)) & 0xffff) as f32)
            .collect();
        out.push(from_vec("updates", &parts));
        if let Some(fast) = &self.fast {
            out.extend(fast.resume_tensors());
        }
        out
    }

    /// Restores what [`FfLearner::resume_tensors`] saved.
    pub fn restore_resume(&mut self, tensors: &[crate::tensor::Tensor]) -> Result<()> {
        use crate::tensor::find;
        self.head.restore_resume(tensors)?;
        for (l, m) in self.peer.iter_mut().enumerate() {
            let n = m.len();
            m.copy_from_slice(find(tensors, &format!("peer{l}"), &[n])?);
        }
        for (l, (w, b)) in self.opt_w.iter_mut().zip(&mut self.opt_b).enumerate() {
            w.restore_state(tensors, &format!("opt{l}.weight"))?;
            b.restore_state(tensors, &format!("opt{l}.bias"))?;
        }
        let parts = find(tensors, "updates", &[4])?;
        self.updates = parts
            .iter()
            .enumerate()
            .map(|(k, p)| (*p as u64) << (16 * k))
            .sum();
        if let Some(fast) = &mut self.fast {
            fast.restore_resume(tensors)?;
        }
        Ok(())
    }

    /// Restores what [`FfLearner::tensors`] saved.
    pub fn restore(&mut self, tensors: &[crate::tensor::Tensor]) -> Result<()> {
        use crate::tensor::{find, to_mat};
        for (i, w) in self.head.weights.iter_mut().enumerate() {
            let (r, c) = w.shape();
            *w = to_mat(tensors, &format!("head{i}.weight"), r, c)?;
        }
        let n = self.head.bias.len();
        self.head
            .bias
            .copy_from_slice(find(tensors, "head.bias", &[n])?);
        for (l, m) in self.peer.iter_mut().enumerate() {
            let n = m.len();
            m.copy_from_slice(find(tensors, &format!("peer{l}"), &[n])?);
        }
        Ok(())
    }
}
