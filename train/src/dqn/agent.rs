//! The DQN agent (CleanRL `dqn_atari.py`'s main loop body): online and target Q-networks with
//! Adam, one gradient step on a sampled minibatch, the learning schedule, and the
//! epsilon-greedy collection step that fills the [`ReplayMemory`].

use std::cell::RefCell;

use cartridge_contract::{FRAME_LEN, OBS_LEN};
use rand::Rng;
use tch::{no_grad, Device, Kind, Tensor};

use super::network::QNetwork;
use super::replay::{Batch, ReplayMemory};
use super::targets::{td_loss, td_target};
use super::{DqnArgs, DqnConfig};
use crate::adam::{clip_grad_norm, zero_grad, Adam};
use crate::precision::Precision;
use crate::tensors::{self, Uploader, OBS_DIMS};
use crate::vecenv::{Episode, VecEnv};
use crate::Result;

/// The online and target Q-networks and the online network's optimizer.
#[derive(Debug)]
pub struct DqnAgent {
    /// The network that acts and learns.
    pub online: QNetwork,
    /// The network the TD targets bootstrap from.
    pub target: QNetwork,
    /// Adam over `online`'s parameters.
    pub adam: Adam,
    params: Vec<Tensor>,
    device: Device,
    gamma: f64,
    huber: bool,
    double: bool,
    max_grad_norm: Option<f64>,
    /// Host-to-device transfers (interior mutability: acting borrows the agent shared).
    uploader: RefCell<Uploader>,
    loss_sum: Tensor,
    q_sum: Tensor,
    steps_summed: u64,
}

/// Mean TD loss and mean `Q(s, a)` over the gradient steps since the last read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TdStats {
    /// Mean TD loss.
    pub td_loss: f64,
    /// Mean `Q(s, a)` of the sampled transitions.
    pub q_values: f64,
}

impl DqnAgent {
    /// A fresh agent for `n_actions` actions: the online network seeded from `cfg`'s seed and
    /// a target network copied from it.
    pub fn new(cfg: &DqnConfig, n_actions: usize, device: Device) -> Result<Self> {
        let a = &cfg.args;
        let online = QNetwork::new(device, n_actions, a.run.seed)?;
        let mut target = QNetwork::new(device, n_actions, a.run.seed)?;
        target.soft_update_from(&online, 1.0);
        let params = online.params();
        let adam = Adam::new(&params, a.learning_rate, a.adam_eps);
        let zero = || tensors::zeros(&[], Kind::Float, device);
        Ok(Self {
            online,
            target,
            adam,
            params,
            device,
            gamma: a.gamma,
            huber: cfg.huber,
            double: a.double,
            max_grad_norm: a.max_grad_norm,
            uploader: RefCell::new(Uploader::new(device)),
            loss_sum: zero(),
            q_sum: zero(),
            steps_summed: 0,
        })
    }

    /// Computes both networks' trunks in `precision` ([`crate::network::NatureTrunk`]).
    pub fn set_precision(&mut self, precision: Precision) {
        self.online.set_precision(precision);
        self.target.set_precision(precision);
    }

    /// Greedy actions `argmax_a Q(obs, a)` for observations u8 `[N, 4, 84, 84]`.
    pub fn greedy(&self, obs: &[u8]) -> Result<Vec<usize>> {
        let x = self.uploader.borrow_mut().upload(&[obs], &OBS_DIMS)?;
        let a = self.online.infer(&x).argmax(-1, false);
        let a: Vec<i64> = Vec::try_from(&a.to_device(Device::Cpu))?;
        Ok(a.into_iter().map(|x| x as usize).collect())
    }

    /// One gradient step on `batch`: TD targets from the target network (Double DQN: at the
    /// online network's argmax), the loss, optional gradient clipping, Adam.
    pub fn train_step(&mut self, batch: &Batch) -> Result<()> {
        let b = batch.actions.len() as i64;
        let dev = self.device;
        // obs and next_obs in one transfer.
        let both = self
            .uploader
            .get_mut()
            .upload(&[&batch.obs, &batch.next_obs], &OBS_DIMS)?;
        let (obs, next) = (both.narrow(0, 0, b), both.narrow(0, b, b));
        let actions = tensors::from_i64(&batch.actions, &[b], dev);
        let rewards = tensors::from_f32(&batch.rewards, &[b], dev);
        let terminated = tensors::from_f32(&batch.terminated, &[b], dev);
        let y = no_grad(|| {
            let q_next_target = self.target.infer(&next);
            let q_next_online = self.double.then(|| self.online.infer(&next));
            td_target(
                &rewards,
                &terminated,
                &q_next_target,
                q_next_online.as_ref(),
                self.gamma,
            )
        });
        let q = self
            .online
            .forward(&obs)
            .gather(1, &actions.unsqueeze(1), false)
            .squeeze_dim(1);
        let loss = td_loss(&q, &y, self.huber);
        zero_grad(&self.params);
        loss.backward();
        if let Some(max) = self.max_grad_norm {
            clip_grad_norm(&self.params, max);
        }
        self.adam.step(&self.params);
        self.online.parameters_changed();
        no_grad(|| {
            self.loss_sum += loss.detach();
            self.q_sum += q.detach().mean(Kind::Float);
        });
        self.steps_summed += 1;
        Ok(())
    }

    /// Means since the last call (None without a gradient step since).
    pub fn take_stats(&mut self) -> Option<TdStats> {
        if self.steps_summed == 0 {
            return None;
        }
        let n = self.steps_summed as f64;
        let out = TdStats {
            td_loss: self.loss_sum.double_value(&[]) / n,
            q_values: self.q_sum.double_value(&[]) / n,
        };
        let _ = self.loss_sum.zero_();
        let _ = self.q_sum.zero_();
        self.steps_summed = 0;
        Some(out)
    }

    /// Moves the target network toward the online one by `tau` (1: copy).
    pub fn update_target(&mut self, tau: f64) {
        self.target.soft_update_from(&self.online, tau);
    }
}

/// The learning schedule for agent steps `before + 1 ..= after` (CleanRL's per-step checks):
/// past `learning_starts`, a gradient step on a sampled minibatch every `train_frequency`
/// steps and a target update every `target_network_frequency` steps. Returns the gradient
/// steps taken.
pub fn learn_due(
    agent: &mut DqnAgent,
    replay: &ReplayMemory,
    a: &DqnArgs,
    before: u64,
    after: u64,
    rng: &mut impl Rng,
) -> Result<u64> {
    let mut steps = 0;
    for s in (before + 1).max(a.learning_starts + 1)..=after {
        if s % a.train_frequency == 0 {
            agent.train_step(&replay.sample(a.batch_size, rng)?)?;
            steps += 1;
        }
        if s % a.target_network_frequency == 0 {
            agent.update_target(a.tau);
        }
    }
    Ok(steps)
}

/// The newest frame `[84, 84]` of an observation `[4, 84, 84]`.
fn newest(obs: &[u8]) -> &[u8] {
    &obs[(OBS_LEN - FRAME_LEN)..OBS_LEN]
}

/// Starts every environment's episode in `replay` from `envs`' current observations (call once
/// after creating both).
pub fn start_episodes(envs: &VecEnv, replay: &mut ReplayMemory) {
    for (i, obs) in envs.obs().chunks_exact(OBS_LEN).enumerate() {
        replay.start_episode(i, newest(obs));
    }
}

/// One epsilon-greedy step of every environment (each env draws its own coin; the network
/// runs only when some env acts greedily), recorded in `replay`. Returns the full games that
/// ended.
pub fn collect(
    agent: &DqnAgent,
    envs: &mut VecEnv,
    replay: &mut ReplayMemory,
    epsilon: f64,
    rng: &mut impl Rng,
) -> Result<Vec<Episode>> {
    let n = envs.len();
    let explore: Vec<bool> = (0..n).map(|_| rng.random::<f64>() < epsilon).collect();
    let greedy = if explore.iter().all(|&e| e) {
        Vec::new()
    } else {
        agent.greedy(envs.obs())?
    };
    let actions: Vec<usize> = (0..n)
        .map(|i| {
            if explore[i] {
                rng.random_range(0..envs.num_actions())
            } else {
                greedy[i]
            }
        })
        .collect();
    envs.step(&actions)?;
    let mut games = Vec::new();
    for (i, t) in envs.last_transitions().iter().enumerate() {
        let ended = t.terminated || t.truncated;
        let next = if ended {
            envs.final_obs(i)
        } else {
            &envs.obs()[i * OBS_LEN..(i + 1) * OBS_LEN]
        };
        replay.push(
            i,
            actions[i],
            t.reward,
            t.terminated,
            t.truncated,
            newest(next),
        );
        if ended {
            replay.start_episode(i, newest(&envs.obs()[i * OBS_LEN..(i + 1) * OBS_LEN]));
        }
        games.extend(t.episode);
    }
    Ok(games)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dqn::QNetwork;

    #[test]
    fn every_variant_fits_a_fixed_batch() {
        use crate::dqn::args::tests::parse_dqn;
        use crate::dqn::DqnConfig;
        use rand::SeedableRng;

        tch::set_num_threads(1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let b = 8;
        let batch = Batch {
            obs: (0..b * OBS_LEN).map(|_| rng.random()).collect(),
            next_obs: (0..b * OBS_LEN).map(|_| rng.random()).collect(),
            actions: (0..b as i64).map(|i| i % 3).collect(),
            rewards: (0..b)
                .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
                .collect(),
            terminated: (0..b).map(|i| if i % 4 == 0 { 1.0 } else { 0.0 }).collect(),
        };
        for flags in [
            &["--loss", "huber"][..],
            &["--loss", "mse", "--double"],
            &["--double", "--max-grad-norm", "10"],
        ] {
            let mut argv = vec!["--learning-rate", "1e-3", "--gamma", "0.5"];
            argv.extend_from_slice(flags);
            let cfg = DqnConfig::from_args(&parse_dqn(&argv)).expect("cfg");
            let mut agent = DqnAgent::new(&cfg, 3, Device::Cpu).expect("agent");
            agent.train_step(&batch).expect("step");
            let first = agent.take_stats().expect("stats").td_loss;
            for _ in 0..30 {
                agent.train_step(&batch).expect("step");
            }
            let _ = agent.take_stats();
            agent.train_step(&batch).expect("step");
            let last = agent.take_stats().expect("stats").td_loss;
            assert!(last < 0.5 * first, "{flags:?}: loss {first} -> {last}");
            assert_eq!(agent.adam.step, 32);
        }
    }

    #[test]
    fn infer_equals_forward_after_every_change_of_the_parameters() {
        // infer's cast-once weights are dropped by an Adam step, a target sync, a load and a
        // precision change; a stale cache would still give the old parameters' Q-values.
        use crate::dqn::args::tests::parse_dqn;
        use crate::dqn::DqnConfig;
        use rand::SeedableRng;

        tch::set_num_threads(1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let b = 4;
        let batch = Batch {
            obs: (0..b * OBS_LEN).map(|_| rng.random()).collect(),
            next_obs: (0..b * OBS_LEN).map(|_| rng.random()).collect(),
            actions: vec![0, 1, 2, 1],
            rewards: vec![1.0, -1.0, 0.0, 1.0],
            terminated: vec![0.0, 0.0, 1.0, 0.0],
        };
        let obs = Tensor::from_slice(&batch.obs).view([b as i64, 4, 84, 84]);
        let q = |t: Tensor| Vec::<f32>::try_from(t.contiguous().view(-1)).expect("f32");
        // Asserts infer == forward bit for bit and returns the values.
        let same = |net: &QNetwork, when: &str| {
            let cached = q(net.infer(&obs));
            assert_eq!(cached, q(no_grad(|| net.forward(&obs))), "{when}");
            cached
        };
        let cfg = DqnConfig::from_args(&parse_dqn(&["--learning-rate", "1e-2"])).expect("cfg");
        for precision in [Precision::Fp32, Precision::Bf16] {
            let mut agent = DqnAgent::new(&cfg, 3, Device::Cpu).expect("agent");
            agent.set_precision(Precision::Fp32);
            same(&agent.online, "fp32 before set_precision");
            agent.set_precision(precision);
            let online0 = same(&agent.online, &format!("{precision}: fresh"));
            let target0 = same(&agent.target, &format!("{precision}: fresh target"));
            agent.train_step(&batch).expect("step");
            let online1 = same(&agent.online, &format!("{precision}: after an Adam step"));
            assert_ne!(online0, online1, "the Adam step changed nothing");
            assert_eq!(target0, same(&agent.target, "target after an Adam step"));
            agent.update_target(1.0);
            assert_eq!(
                online1,
                same(&agent.target, &format!("{precision}: after a target sync"))
            );
            agent
                .online
                .load(&cartridge_export::torch_default_init(
                    cartridge_export::Algo::Dqn,
                    3,
                    99,
                ))
                .expect("load");
            assert_ne!(
                online1,
                same(&agent.online, &format!("{precision}: after a load"))
            );
        }
    }

    /// `[rows][cols]` of a 2-D f32 tensor.
    fn rows(t: &Tensor) -> Vec<Vec<f64>> {
        let flat: Vec<f32> = Vec::try_from(t.contiguous().view(-1)).expect("f32");
        let cols = t.size()[1] as usize;
        flat.chunks(cols)
            .map(|r| r.iter().map(|&x| f64::from(x)).collect())
            .collect()
    }

    #[test]
    fn each_variant_computes_its_own_target_and_loss() {
        // The loss of one train_step against the formulas written out here, from the two
        // networks' outputs: Nature DQN's target r + gamma (1 - d) max_a Q_target(s', a),
        // Double DQN's r + gamma (1 - d) Q_target(s', argmax_a Q_online(s', a)); Huber
        // (delta 1) or squared error. The online and target networks differ, so the four
        // variants give four different losses: a variant whose flag were ignored fails.
        use crate::dqn::args::tests::parse_dqn;
        use crate::dqn::DqnConfig;
        use rand::SeedableRng;

        tch::set_num_threads(1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let b = 16;
        let batch = Batch {
            obs: (0..b * OBS_LEN).map(|_| rng.random()).collect(),
            next_obs: (0..b * OBS_LEN).map(|_| rng.random()).collect(),
            actions: (0..b as i64).map(|i| i % 3).collect(),
            rewards: (0..b).map(|i| [1.0, -1.0, 0.0][i % 3]).collect(),
            terminated: (0..b).map(|i| if i % 4 == 0 { 1.0 } else { 0.0 }).collect(),
        };
        let gamma = 0.9;
        let mut losses = Vec::new();
        for (loss, double) in [
            ("mse", false),
            ("mse", true),
            ("huber", false),
            ("huber", true),
        ] {
            let mut argv = vec!["--gamma", "0.9", "--loss", loss];
            if double {
                argv.push("--double");
            }
            let cfg = DqnConfig::from_args(&parse_dqn(&argv)).expect("cfg");
            let mut agent = DqnAgent::new(&cfg, 3, Device::Cpu).expect("agent");
            agent.target = QNetwork::new(Device::Cpu, 3, 77).expect("target");
            let as_obs = |bytes: &[u8]| Tensor::from_slice(bytes).view([b as i64, 4, 84, 84]);
            let (q_now, next_online, next_target) = tch::no_grad(|| {
                (
                    rows(&agent.online.forward(&as_obs(&batch.obs))),
                    rows(&agent.online.forward(&as_obs(&batch.next_obs))),
                    rows(&agent.target.forward(&as_obs(&batch.next_obs))),
                )
            });
            let argmax = |r: &[f64]| {
                (0..r.len())
                    .max_by(|&i, &j| r[i].total_cmp(&r[j]))
                    .expect("actions")
            };
            let mut want = 0.0;
            for i in 0..b {
                let next = if double {
                    next_target[i][argmax(&next_online[i])]
                } else {
                    next_target[i][argmax(&next_target[i])]
                };
                let y = f64::from(batch.rewards[i])
                    + gamma * (1.0 - f64::from(batch.terminated[i])) * next;
                let e = q_now[i][batch.actions[i] as usize] - y;
                want += if loss == "huber" && e.abs() >= 1.0 {
                    e.abs() - 0.5
                } else if loss == "huber" {
                    0.5 * e * e
                } else {
                    e * e
                };
            }
            want /= b as f64;
            agent.train_step(&batch).expect("step");
            let got = agent.take_stats().expect("stats").td_loss;
            assert!(
                (got - want).abs() < 1e-5 * want.max(1.0),
                "--loss {loss}{}: td_loss {got}, by hand {want}",
                if double { " --double" } else { "" }
            );
            losses.push(want);
        }
        for i in 0..losses.len() {
            for j in 0..i {
                assert!(
                    (losses[i] - losses[j]).abs() > 1e-4,
                    "variants {i} and {j} give the same loss {losses:?}: the test cannot tell them apart"
                );
            }
        }
    }
}
