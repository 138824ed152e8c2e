//! Training logs in the run folder:
//!
//! - `metrics.csv`: one row per PPO iteration or per DQN logging interval ([`MetricsRow`],
//!   CleanRL's logged quantities; the other algorithm's columns are empty);
//! - `episodes.jsonl`: one JSON object per finished full game (`global_step`, `return`,
//!   `length` in agent steps);
//! - `events.out.tfevents.*`: the same quantities for TensorBoard under CleanRL's tags
//!   ([`tensorboard_scalars`]; every game as `charts/episodic_return` and
//!   `charts/episodic_length`, and SB3's `rollout/ep_rew_mean`, `rollout/ep_len_mean` for the
//!   100-game means), one new file per process ([`crate::tensorboard`]);
//! - `curve.png`: mean return of the last 100 games, and the PPO losses or DQN's mean Q and
//!   epsilon, vs agent steps (plotters), redrawn at each checkpoint;
//! - an indicatif progress bar on stderr.
//!
//! On resume, rows and games logged after the checkpoint's step are dropped so the files
//! describe one consistent run.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::tensorboard::EventWriter;
use crate::vecenv::Episode;
use crate::{Error, Result};

/// One `metrics.csv` row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Agent steps so far.
    pub global_step: u64,
    /// Mean raw return of the last 100 games (empty before the first game).
    pub episodic_return: Option<f64>,
    /// Mean length (agent steps) of the last 100 games.
    pub episodic_length: Option<f64>,
    /// PPO: clipped-surrogate loss.
    #[serde(default)]
    pub pg_loss: Option<f64>,
    /// PPO: value loss.
    #[serde(default)]
    pub v_loss: Option<f64>,
    /// PPO: policy entropy.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// PPO: approximate KL divergence (k3 estimator).
    #[serde(default)]
    pub approx_kl: Option<f64>,
    /// PPO: fraction of clipped ratios.
    #[serde(default)]
    pub clipfrac: Option<f64>,
    /// PPO: explained variance of the value function on the batch.
    #[serde(default)]
    pub explained_variance: Option<f64>,
    /// DQN: mean TD loss over the interval's gradient steps.
    #[serde(default)]
    pub td_loss: Option<f64>,
    /// DQN: mean `Q(s, a)` of the sampled transitions.
    #[serde(default)]
    pub q_values: Option<f64>,
    /// DQN: exploration epsilon at the row's step.
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// Learning rate of this iteration.
    pub learning_rate: f64,
    /// Agent steps per second of this iteration.
    pub sps: f64,
}

/// Open log files plus the state they summarise.
#[derive(Debug)]
pub struct RunLog {
    dir: PathBuf,
    csv: csv::Writer<File>,
    episodes: BufWriter<File>,
    recent: VecDeque<Episode>,
    history: Vec<MetricsRow>,
    events: EventWriter,
    bar: ProgressBar,
}

/// The TensorBoard tags of a `metrics.csv` row and their values: CleanRL's tag names
/// (`ppo_atari.py`, `dqn_atari.py`) for its quantities, SB3's `rollout/ep_rew_mean` and
/// `rollout/ep_len_mean` for the mean of the last 100 games; empty columns are skipped.
pub fn tensorboard_scalars(row: &MetricsRow) -> Vec<(&'static str, f64)> {
    [
        ("rollout/ep_rew_mean", row.episodic_return),
        ("rollout/ep_len_mean", row.episodic_length),
        ("losses/policy_loss", row.pg_loss),
        ("losses/value_loss", row.v_loss),
        ("losses/entropy", row.entropy),
        ("losses/approx_kl", row.approx_kl),
        ("losses/clipfrac", row.clipfrac),
        ("losses/explained_variance", row.explained_variance),
        ("losses/td_loss", row.td_loss),
        ("losses/q_values", row.q_values),
        ("charts/epsilon", row.epsilon),
        ("charts/learning_rate", Some(row.learning_rate)),
        ("charts/SPS", Some(row.sps)),
    ]
    .into_iter()
    .filter_map(|(tag, v)| Some((tag, v?)))
    .collect()
}

fn log_err(e: impl std::fmt::Display) -> Error {
    Error::Log(e.to_string())
}

impl RunLog {
    /// Opens (or, resuming at `resume_step`, trims and reopens) the logs in `dir`.
    pub fn open(dir: &Path, total_steps: u64, resume_step: Option<u64>) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let csv_path = dir.join("metrics.csv");
        let ep_path = dir.join("episodes.jsonl");
        let mut history = Vec::new();
        let mut recent = VecDeque::new();
        if let Some(step) = resume_step {
            if csv_path.exists() {
                history = read_metrics(&csv_path)?;
                history.retain(|r| r.global_step <= step);
            }
            if ep_path.exists() {
                let mut kept = Vec::new();
                for line in BufReader::new(File::open(&ep_path)?).lines() {
                    let line = line?;
                    let v: serde_json::Value = serde_json::from_str(&line).map_err(log_err)?;
                    if v["global_step"].as_u64().is_some_and(|s| s <= step) {
                        recent.push_back(Episode {
                            ret: v["return"].as_f64().unwrap_or(0.0),
                            len: v["length"].as_u64().unwrap_or(0),
                        });
                        if recent.len() > 100 {
                            recent.pop_front();
                        }
                        kept.push(line);
                    }
                }
                let mut text = kept.join("\n");
                if !text.is_empty() {
                    text.push('\n');
                }
                cartridge_export::write_atomic(&ep_path, text.as_bytes())?;
            }
        }
        let mut csv = csv::Writer::from_writer(File::create(&csv_path)?);
        for row in &history {
            csv.serialize(row).map_err(log_err)?;
        }
        csv.flush()?;
        let events = EventWriter::create(dir, resume_step)?;
        let episodes = BufWriter::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&ep_path)?,
        );
        let bar = ProgressBar::new(total_steps);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} steps  {per_sec}  {msg}  ETA {eta}",
            )
            .map_err(log_err)?,
        );
        bar.set_position(resume_step.unwrap_or(0));
        Ok(Self {
            dir: dir.to_path_buf(),
            csv,
            episodes,
            recent,
            history,
            events,
            bar,
        })
    }

    /// Records finished games at `global_step`.
    pub fn games(&mut self, global_step: u64, games: &[Episode]) -> Result<()> {
        for g in games {
            let line =
                serde_json::json!({"global_step": global_step, "return": g.ret, "length": g.len});
            writeln!(self.episodes, "{line}")?;
            self.events
                .scalar("charts/episodic_return", global_step, g.ret)?;
            self.events
                .scalar("charts/episodic_length", global_step, g.len as f64)?;
            self.recent.push_back(*g);
            if self.recent.len() > 100 {
                self.recent.pop_front();
            }
        }
        Ok(())
    }

    /// Mean raw return and length of the last 100 games, if any.
    pub fn recent_means(&self) -> Option<(f64, f64)> {
        let n = self.recent.len();
        (n > 0).then(|| {
            (
                self.recent.iter().map(|e| e.ret).sum::<f64>() / n as f64,
                self.recent.iter().map(|e| e.len as f64).sum::<f64>() / n as f64,
            )
        })
    }

    /// Appends one `metrics.csv` row (a PPO iteration, or a DQN logging interval) and advances
    /// the progress bar.
    pub fn row(&mut self, mut row: MetricsRow) -> Result<()> {
        if let Some((r, l)) = self.recent_means() {
            row.episodic_return = Some(r);
            row.episodic_length = Some(l);
        }
        self.csv.serialize(&row).map_err(log_err)?;
        self.csv.flush()?;
        self.episodes.flush()?;
        for (tag, v) in tensorboard_scalars(&row) {
            self.events.scalar(tag, row.global_step, v)?;
        }
        self.events.flush()?;
        self.bar.set_position(row.global_step);
        let ret = match row.episodic_return {
            Some(r) => format!("return(100) {r:.2}"),
            None => "return(100) -".into(),
        };
        self.bar.set_message(match row.epsilon {
            Some(e) => format!("{ret}  epsilon {e:.3}"),
            None => ret,
        });
        self.history.push(row);
        Ok(())
    }

    /// Prints a line above the progress bar (to stderr when the bar is hidden because stderr
    /// is not a terminal).
    pub fn println(&self, msg: impl AsRef<str>) {
        if self.bar.is_hidden() {
            eprintln!("{}", msg.as_ref());
        } else {
            self.bar.println(msg);
        }
    }

    /// Ends the progress bar.
    pub fn finish(&self) {
        self.bar.finish();
    }

    /// The rows so far.
    pub fn history(&self) -> &[MetricsRow] {
        &self.history
    }

    /// Redraws `curve.png` from the history.
    pub fn plot(&self, title: &str) -> Result<()> {
        plot_curve(&self.dir.join("curve.png"), title, &self.history)
    }
}

/// Reads a `metrics.csv`.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>> {
    let mut r =
        csv::Reader::from_path(path).map_err(|e| Error::Log(format!("{}: {e}", path.display())))?;
    r.deserialize::<MetricsRow>()
        .map(|row| row.map_err(|e| Error::Log(format!("{}: {e}", path.display()))))
        .collect()
}

/// Registers a system sans-serif font for plot text; false if none is found (plots are then
/// drawn without text).
fn font_available() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(
                    "sans-serif",
                    plotters::style::FontStyle::Normal,
                    bytes,
                )
                .is_ok()
                {
                    return true;
                }
            }
        }
        false
    })
}

type Area<'a> =
    plotters::prelude::DrawingArea<plotters::prelude::BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws a titled `size` PNG at `path` with `draw(area, text)` (`text`: a font is available),
/// through a temporary file renamed when complete.
fn draw_png(
    path: &Path,
    size: (u32, u32),
    title: &str,
    draw: impl FnOnce(&Area<'_>, bool) -> Result<()>,
) -> Result<()> {
    use plotters::prelude::*;
    let tmp = path.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(log_err)?;
        let text = font_available();
        let root = if text {
            root.titled(title, ("sans-serif", 22)).map_err(log_err)?
        } else {
            root
        };
        draw(&root, text)?;
        root.present().map_err(log_err)?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Draws return (top) and losses (bottom) against agent steps into a PNG.
pub fn plot_curve(path: &Path, title: &str, rows: &[MetricsRow]) -> Result<()> {
    use plotters::prelude::*;
    draw_png(path, (900, 700), title, |root, text| {
        let (top, bottom) = root.split_vertically(360);
        let max_x = rows.iter().map(|r| r.global_step).max().unwrap_or(1).max(1) as f64;
        let series = |f: fn(&MetricsRow) -> Option<f64>| -> Vec<(f64, f64)> {
            rows.iter()
                .filter_map(|r| f(r).map(|v| (r.global_step as f64, v)))
                .filter(|p| p.1.is_finite())
                .collect()
        };
        panel(
            &top,
            "mean raw return, last 100 games",
            text,
            max_x,
            vec![("return".into(), BLUE, series(|r| r.episodic_return))],
        )?;
        // DQN's TD loss (~1e-3) would sit flat under Q and epsilon (~1); it stays in the csv.
        let (caption, lines) = if rows.iter().any(|r| r.epsilon.is_some()) {
            (
                "mean Q(s, a) of sampled transitions, epsilon",
                vec![
                    ("q_values".into(), RED, series(|r| r.q_values)),
                    ("epsilon".into(), MAGENTA, series(|r| r.epsilon)),
                ],
            )
        } else {
            (
                "losses",
                vec![
                    ("pg_loss".into(), RED, series(|r| r.pg_loss)),
                    ("v_loss".into(), GREEN, series(|r| r.v_loss)),
                    ("entropy".into(), MAGENTA, series(|r| r.entropy)),
                ],
            )
        };
        panel(&bottom, caption, text, max_x, lines)
    })
}

/// Draws the mean raw return (last 100 games) of several runs, `(label, rows)`, on one chart
/// into a PNG, up to `max_steps` agent steps when given (the longest run's end otherwise).
pub fn plot_returns(
    path: &Path,
    title: &str,
    runs: &[(String, Vec<MetricsRow>)],
    max_steps: Option<u64>,
) -> Result<()> {
    use plotters::prelude::*;
    const COLORS: [RGBColor; 6] = [BLUE, RED, GREEN, MAGENTA, CYAN, RGBColor(255, 140, 0)];
    let keep = |step: u64| max_steps.is_none_or(|m| step <= m);
    let lines: Vec<Line> = runs
        .iter()
        .zip(COLORS.iter().cycle())
        .map(|((label, rows), color)| {
            let points = rows
                .iter()
                .filter(|r| keep(r.global_step))
                .filter_map(|r| Some((r.global_step as f64, r.episodic_return?)))
                .filter(|p| p.1.is_finite())
                .collect();
            (label.clone(), *color, points)
        })
        .collect();
    let max_x = lines
        .iter()
        .flat_map(|l| l.2.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    draw_png(path, (900, 420), title, |root, text| {
        panel(root, "mean raw return, last 100 games", text, max_x, lines)
    })
}

type Line = (String, plotters::style::RGBColor, Vec<(f64, f64)>);

/// One chart of `lines` against agent steps; text (caption, axes, legend) only when a font
/// is available.
fn panel<DB: plotters::prelude::DrawingBackend>(
    area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    text: bool,
    max_x: f64,
    lines: Vec<Line>,
) -> Result<()> {
    use plotters::prelude::*;
    let (lo, hi) = bounds(lines.iter().flat_map(|l| l.2.iter().map(|p| p.1)));
    let mut c = ChartBuilder::on(area);
    c.margin(10).x_label_area_size(30).y_label_area_size(50);
    if text {
        c.caption(caption, ("sans-serif", 16));
    }
    let mut chart = c.build_cartesian_2d(0.0..max_x, lo..hi).map_err(log_err)?;
    if text {
        chart
            .configure_mesh()
            .x_desc("agent steps")
            .x_label_formatter(&steps_label)
            .draw()
            .map_err(log_err)?;
    }
    let legend = lines.len() > 1 && text;
    for (name, color, points) in lines {
        let s = chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(log_err)?;
        if legend {
            s.label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if legend {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(log_err)?;
    }
    Ok(())
}

/// Axis labels for agent steps: 512, 25k, 1.5M.
fn steps_label(x: &f64) -> String {
    match *x {
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e4 => format!("{:.0}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}
