//! Data-parallel training over MPI, as OpenAI baselines' `ppo2` (one process per worker,
//! gradients averaged with `MPI_Allreduce` by its `MpiAdamOptimizer`) and CleanRL's
//! `ppo_atari_multigpu.py` (the same with `torch.distributed`) do it.
//!
//! A process started by `mpirun` (or `srun`) is one rank of [`Dist::size`]; any other process is
//! the single rank 0 of 1, and every collective here is then a no-op, so single-process
//! training is exactly what it was. MPI is reached through the `mpi` crate (rsmpi) on Open
//! MPI, compiled in with the `mpi` feature (on by default).

/// Environment variables that a launcher sets in every rank: Open MPI's `mpirun`, MPICH's
/// Hydra and Slurm's PMI, PMIx (Slurm `srun --mpi=pmix`).
const LAUNCHER_VARS: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];

/// This process's place in the run: rank, number of ranks, rank on its machine.
pub struct Dist {
    rank: usize,
    size: usize,
    local_rank: usize,
    #[cfg(feature = "mpi")]
    mpi: Option<Mpi>,
}

#[cfg(feature = "mpi")]
struct Mpi {
    world: mpi::topology::SimpleCommunicator,
    /// A copy of `world` for the interrupt handshake ([`Interrupt`]), when MPI allows calls
    /// from several threads.
    interrupt: Option<mpi::topology::SimpleCommunicator>,
    // Dropped last: finalizes MPI.
    _universe: mpi::environment::Universe,
}

/// What the interrupt handler of an MPI run needs (see [`Dist::interrupt`]).
#[derive(Clone, Copy)]
pub struct Interrupt {
    rank: usize,
    size: usize,
    /// The handshake communicator; `None` when MPI does not allow calls from the handler's
    /// thread.
    #[cfg(feature = "mpi")]
    comm: Option<RawComm>,
}

impl std::fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupt")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

/// A communicator's raw handle, to be used from the interrupt handler's thread.
#[cfg(feature = "mpi")]
#[derive(Clone, Copy)]
struct RawComm(mpi::ffi::MPI_Comm);

// SAFETY: MPI was initialized with `Threading::Multiple`, so a communicator may be used from
// any thread; the handshake communicator is used by the handler's thread alone.
#[cfg(feature = "mpi")]
unsafe impl Send for RawComm {}

/// Tag of the handshake's messages.
#[cfg(feature = "mpi")]
const INTERRUPT_TAG: i32 = 7_001;

impl Interrupt {
    /// Whether this is rank 0, which writes the checkpoint.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Rank 0, its checkpoint written: tells every other rank that it may exit.
    pub fn release_others(&self) {
        #[cfg(feature = "mpi")]
        if let Some(RawComm(raw)) = self.comm {
            use mpi::raw::FromRaw;
            use mpi::traits::{Communicator, Destination};
            // SAFETY: `raw` is the handshake communicator, alive until the process exits (it
            // is never freed); this is the only thread that uses it on this rank.
            let comm = unsafe { mpi::topology::SimpleCommunicator::from_raw(raw) };
            for r in 1..self.size {
                comm.process_at_rank(r as i32)
                    .send_with_tag(&1u8, INTERRUPT_TAG);
            }
            std::mem::forget(comm);
        }
    }

    /// Another rank: waits until rank 0 has written its checkpoint; without the handshake,
    /// forever (until `mpirun` ends the process).
    pub fn wait_for_root(&self) {
        #[cfg(feature = "mpi")]
        if let Some(RawComm(raw)) = self.comm {
            use mpi::raw::FromRaw;
            use mpi::traits::{Communicator, Source};
            // SAFETY: as in `release_others`.
            let comm = unsafe { mpi::topology::SimpleCommunicator::from_raw(raw) };
            let mut byte = 0u8;
            comm.process_at_rank(0)
                .receive_into_with_tag(&mut byte, INTERRUPT_TAG);
            std::mem::forget(comm);
            return;
        }
        loop {
            std::thread::park();
        }
    }
}

impl std::fmt::Debug for Dist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dist")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .field("local_rank", &self.local_rank)
            .finish()
    }
}

/// Whether a launcher (mpirun, srun) started this process.
pub fn launched_by_mpi() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

impl Dist {
    /// The single process: rank 0 of 1.
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            local_rank: 0,
            #[cfg(feature = "mpi")]
            mpi: None,
        }
    }

    /// MPI's world when a launcher started this process ([`launched_by_mpi`]), else
    /// [`Self::single`]. Call once per process.
    ///
    /// Errors: MPI cannot be initialized, or (built without the `mpi` feature) the launcher
    /// started more than one rank.
    pub fn from_env() -> crate::Result<Self> {
        if !launched_by_mpi() {
            return Ok(Self::single());
        }
        Self::init_mpi()
    }

    #[cfg(feature = "mpi")]
    fn init_mpi() -> crate::Result<Self> {
        use mpi::traits::Communicator;
        // Multiple: the interrupt handler's thread talks to the other ranks while the main
        // thread may be inside a collective.
        let (universe, provided) = mpi::initialize_with_threading(mpi::Threading::Multiple)
            .ok_or_else(|| crate::Error::Mpi("MPI is initialized already".into()))?;
        let world = universe.world();
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        let interrupt = (provided == mpi::Threading::Multiple).then(|| world.duplicate());
        Ok(Self {
            rank: world.rank() as usize,
            size: world.size() as usize,
            local_rank,
            mpi: Some(Mpi {
                world,
                interrupt,
                _universe: universe,
            }),
        })
    }

    #[cfg(not(feature = "mpi"))]
    fn init_mpi() -> crate::Result<Self> {
        let size = LAUNCHER_VARS[..2]
            .iter()
            .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
            .unwrap_or(1);
        if size > 1 {
            return Err(crate::Error::Mpi(format!(
                "started as one of {size} MPI ranks, but this `train` was built without MPI \
                 (the `mpi` feature); rebuild it with `make train` (which installs Open MPI) or \
                 run it without mpirun"
            )));
        }
        Ok(Self::single())
    }

    /// This process's rank, `0..size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks (1 without MPI).
    pub fn size(&self) -> usize {
        self.size
    }

    /// Rank among the ranks on this machine (picks the GPU: `cuda:local_rank`).
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// Whether this rank writes the run's files (rank 0).
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// The interrupt handshake of this run; `None` in a single process.
    pub fn interrupt(&self) -> Option<Interrupt> {
        if self.size == 1 {
            return None;
        }
        Some(Interrupt {
            rank: self.rank,
            size: self.size,
            #[cfg(feature = "mpi")]
            comm: self.mpi.as_ref().and_then(|m| {
                use mpi::raw::AsRaw;
                m.interrupt.as_ref().map(|c| RawComm(c.as_raw()))
            }),
        })
    }

    /// Replaces `buf` on every rank by the element-wise mean over ranks (one
    /// `MPI_Allreduce` of a sum, then a division by [`Self::size`]).
    pub fn mean_in_place(&self, buf: &mut [f32]) {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::collective::SystemOperation;
            use mpi::traits::CommunicatorCollectives;
            let send = buf.to_vec();
            m.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
            let k = self.size as f32;
            for x in buf.iter_mut() {
                *x /= k;
            }
        }
        #[cfg(not(feature = "mpi"))]
        let _ = buf;
    }

    /// Replaces `buf` on every rank by rank 0's.
    pub fn broadcast(&self, buf: &mut [f32]) {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::{Communicator, Root};
            m.world.process_at_rank(0).broadcast_into(buf);
        }
        #[cfg(not(feature = "mpi"))]
        let _ = buf;
    }

    /// Rank 0 gets every rank's `x` in rank order; the other ranks get an empty vector.
    pub fn gather(&self, x: f64) -> Vec<f64> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::{Communicator, Root};
            let root = m.world.process_at_rank(0);
            if self.is_root() {
                let mut all = vec![0.0; self.size];
                root.gather_into_root(&x, &mut all[..]);
                return all;
            }
            root.gather_into(&x);
            return Vec::new();
        }
        vec![x]
    }

    /// Ends every rank with `code` (`MPI_Abort`): a rank that fails must not leave the others
    /// waiting in a collective. Without MPI, exits this process.
    pub fn abort(&self, code: i32) -> ! {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            use mpi::traits::Communicator;
            m.world.abort(code);
        }
        std::process::exit(code)
    }
}

/// Flattens `tensors` (f32, any device) into one host vector, in order.
fn flatten(tensors: &[tch::Tensor]) -> crate::Result<Vec<f32>> {
    let flat: Vec<tch::Tensor> = tensors.iter().map(|t| t.detach().view(-1)).collect();
    let all = tch::Tensor::cat(&flat, 0).to_device(tch::Device::Cpu);
    Ok(Vec::<f32>::try_from(&all)?)
}

/// Copies `values` back into `tensors` (the layout of [`flatten`]).
fn unflatten(values: &[f32], tensors: &[tch::Tensor]) {
    let mut at = 0;
    tch::no_grad(|| {
        for t in tensors {
            let n = t.numel();
            let src = crate::tensors::host_f32(&values[at..at + n], &t.size());
            t.shallow_clone().copy_(&src);
            at += n;
        }
    });
}

impl Dist {
    /// Makes every rank's `params` rank 0's (CleanRL `ppo_atari_multigpu.py` broadcasts the
    /// initial weights the same way). Nothing to do in a single process.
    pub fn broadcast_params(&self, params: &[tch::Tensor]) -> crate::Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let mut flat = flatten(params)?;
        self.broadcast(&mut flat);
        unflatten(&flat, params);
        Ok(())
    }

    /// Replaces the gradient of every parameter by its mean over ranks: one all-reduce of the
    /// flattened gradients (baselines' `MpiAdamOptimizer`, CleanRL's `all_reduce` of
    /// `torch.cat` of the gradients). Returns the seconds it took (0 in a single process).
    pub fn average_gradients(&self, params: &[tch::Tensor]) -> crate::Result<f64> {
        if self.size == 1 {
            return Ok(0.0);
        }
        let started = std::time::Instant::now();
        let grads: Vec<tch::Tensor> = params.iter().map(tch::Tensor::grad).collect();
        if let Some(i) = grads.iter().position(|g| !g.defined()) {
            return Err(crate::Error::Mpi(format!(
                "parameter {i} has no gradient to average"
            )));
        }
        let mut flat = flatten(&grads)?;
        self.mean_in_place(&mut flat);
        unflatten(&flat, &grads);
        Ok(started.elapsed().as_secs_f64())
    }

    /// Checks that every rank holds the same `params` (bit for bit), as averaged gradients and
    /// identical Adam steps must leave them. Errors name the ranks that differ.
    pub fn check_params_agree(&self, params: &[tch::Tensor], iteration: u64) -> crate::Result<()> {
        if self.size == 1 {
            return Ok(());
        }
        let hash = params_hash(&flatten(params)?);
        // f64 carries 53 bits of the 64-bit hash exactly.
        let hashes = self.gather((hash >> 11) as f64);
        let mut verdict = [0.0f32];
        if self.is_root() && hashes.iter().any(|&h| h != hashes[0]) {
            verdict[0] = 1.0;
        }
        self.broadcast(&mut verdict);
        if verdict[0] != 0.0 {
            let seen = match self.is_root() {
                true => format!("parameter hashes by rank {hashes:?}"),
                false => "rank 0 compared the hashes".into(),
            };
            return Err(crate::Error::Mpi(format!(
                "the ranks' parameters differ after iteration {iteration} ({seen}); the \
                 gradients were not averaged identically"
            )));
        }
        Ok(())
    }
}

/// FNV-1a over the bits of `values` (a fingerprint, not a cryptographic hash).
pub fn params_hash(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
