#!/usr/bin/env bash
# Speed of Cartridge's `train ... --bench` against CleanRL's own scripts on the same machine:
# DQN on Pong (`train dqn --bench` vs `cleanrl/dqn_atari.py`) and PPO on Breakout
# (`train ppo --bench` vs `cleanrl/ppo_atari.py` and `cleanrl/ppo_atari_envpool.py`), all on one
# pinned CPU core with one thread, in alternating rounds, one measurement at a time.
#
# Usage: scripts/bench-compare.sh [TRAIN_BIN]
#   TRAIN_BIN  the train binary (default: target/release/train; a relative path is taken from
#              the repository root). It runs with the repository root as its working
#              directory, where it finds the ROMs (ALE_ROM_DIR, ./roms or .venv's ale-py).
#
# What is measured (agent steps per second; every figure from its tool's own clock):
#   dqn   Cartridge: `train dqn --rom pong --bench --buffer-size B --threads 1 --env-threads 1
#         --device cpu`, JSON `train_steps_per_s` (4,000 agent steps at epsilon 0.01, a gradient
#         step on 32 every 4 steps, after the memory was filled with random actions).
#         CleanRL: `dqn_atari.py --env-id PongNoFrameskip-v4 --buffer-size B --learning-starts L
#         --total-timesteps L+4101` (epsilon reaches 0.01 long before L); the rate is
#         4,000 / (wall time between its `losses/td_loss` events at steps L+100 and L+4100),
#         read from the TensorBoard event file it writes.
#   ppo   Cartridge: `train ppo --rom breakout --bench --threads 1 --env-threads 1 --device cpu`,
#         JSON `steps_per_s` (CleanRL's defaults: 8 envs x 128 steps, 4 epochs of 4 minibatches;
#         one warm-up iteration, then 3 timed). CleanRL: each script of CLEANRL_PPO with
#         `--total-timesteps 4096` and its defaults otherwise; the rate is 3,072 / (wall time
#         between its `charts/SPS` events at steps 1,024 and 4,096), i.e. iterations 2-4 after
#         a warm-up iteration, as Cartridge times them.
#   Each round runs dqn then ppo; odd rounds run Cartridge first, even rounds CleanRL first.
#
# Environment:
#   ROUNDS               rounds (default: 3)
#   BENCH_CORE           the CPU core every measurement is pinned to with taskset (default: 0)
#   CLEANRL_DIR          a CleanRL checkout to use as it is. When unset, CleanRL is cloned from
#                        https://github.com/vwxyzjn/cleanrl into CACHE_DIR/cleanrl and
#                        CLEANRL_COMMIT is checked out.
#   CLEANRL_COMMIT       default: fe8d8a03c41a7ef5b523e2e354bd01c363e786bb (the commit
#                        Cartridge's docs cite)
#   CACHE_DIR            default: ${XDG_CACHE_HOME:-$HOME/.cache}/cartridge
#   CLEANRL_VENV         CleanRL's virtual environment, created when missing (default:
#                        CACHE_DIR/venv-cleanrl). Its packages are pinned to the versions of the
#                        checkout's requirements/requirements-{atari,envpool}.txt (torch 2.4.1,
#                        gymnasium 0.29.1, ale-py 0.8.1, envpool 0.6.6, numpy 1.24.4, ...).
#   CLEANRL_PYTHON       interpreter for that venv; CleanRL wants Python >= 3.8, < 3.11 (default:
#                        the first of python3.10, python3.9, python3.8 that runs, then pyenv's)
#   CLEANRL_PIP_ARGS     extra pip arguments (e.g. "--extra-index-url
#                        https://download.pytorch.org/whl/cpu" for torch's CPU-only wheel)
#   CLEANRL_PPO          CleanRL PPO scripts to run (default: "ppo_atari ppo_atari_envpool")
#   PYTHON               python with the torch 2.11.0 Cartridge was built against (default:
#                        .venv/bin/python, else python3); its torch/lib goes first on
#                        LD_LIBRARY_PATH for the train binary
#   ALE_ROM_DIR          folder of Atari ROMs (*.bin) imported into CleanRL's ale-py 0.8.1 when
#                        it has no Pong/Breakout (default: ale-py's ROMs of PYTHON; when there
#                        are none, CleanRL's own AutoROM[accept-rom-license] downloads them)
#   PRECISION            Cartridge's --precision (fp32, bf16, auto; default: unset, i.e. train's
#                        default); recorded in the setup line
#   DQN_BUFFER           replay memory size for both (default: 100000)
#   DQN_LEARNING_STARTS  CleanRL's --learning-starts (default: 80000, CleanRL's default)
#   MEASURE_TIMEOUT      seconds allowed to each measurement (default: 900)
#   AUTOGROUP_NICE       when set (e.g. -20; needs root), written to /proc/self/autogroup of each
#                        measured process's session. With the kernel's autogroup scheduling on
#                        (/proc/sys/kernel/sched_autogroup_enabled = 1), `nice` orders threads
#                        only inside one session: a nice-19 training run started elsewhere still
#                        takes an equal share of the benchmark's core. Lowering the benchmark
#                        session's autogroup nice makes such a run background again.
#   OUT_DIR              folder for the logs and CleanRL's runs/ (default: a fresh mktemp -d)
#
# Output: on stdout, one JSON line {"setup": ...} (versions, CPU, commit), one JSON line per
# measurement ({"round", "bench", "impl", "ok", "steps_per_s", "cpu_share_window", "cpu_per_wall",
# "cmd", ...}), then {"summary": [...]} with each tool's mean and Cartridge / CleanRL per pair.
# cpu_share_window is the CPU time the process got per second of its timed window (sampled from
# /proc every 0.5 s), cpu_per_wall the same over its whole run: near 1.0 when it had the core to
# itself, lower when something else ran on that core.
# Progress and a readable summary go to stderr. The exit status is 1 when a measurement failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TRAIN=${1:-target/release/train}
[[ $TRAIN == /* ]] || TRAIN="$ROOT/$TRAIN"
ROUNDS=${ROUNDS:-3}
CORE=${BENCH_CORE:-0}
CLEANRL_COMMIT=${CLEANRL_COMMIT:-fe8d8a03c41a7ef5b523e2e354bd01c363e786bb}
CACHE_DIR=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cartridge}
CLEANRL_VENV=${CLEANRL_VENV:-$CACHE_DIR/venv-cleanrl}
CLEANRL_PPO=${CLEANRL_PPO:-ppo_atari ppo_atari_envpool}
DQN_BUFFER=${DQN_BUFFER:-100000}
PRECISION_ARGS=()
if [[ -n ${PRECISION:-} ]]; then PRECISION_ARGS=(--precision "$PRECISION"); fi
DQN_LEARNING_STARTS=${DQN_LEARNING_STARTS:-80000}
MEASURE_TIMEOUT=${MEASURE_TIMEOUT:-900}
OUT=${OUT_DIR:-}
if [[ -z $OUT ]]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi

log() { printf '[bench-compare] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}

[[ -x $TRAIN ]] || die "$TRAIN is not an executable train binary (pass TRAIN_BIN)"
command -v taskset >/dev/null 2>&1 || die "taskset (util-linux) is needed"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"

# --- CleanRL checkout --------------------------------------------------------------------
if [[ -n ${CLEANRL_DIR:-} ]]; then
    [[ -f $CLEANRL_DIR/cleanrl/dqn_atari.py ]] || die "CLEANRL_DIR=$CLEANRL_DIR holds no cleanrl/dqn_atari.py"
    CLEANRL_DIR=$(cd "$CLEANRL_DIR" && pwd)
else
    CLEANRL_DIR=$CACHE_DIR/cleanrl
    if [[ ! -d $CLEANRL_DIR/.git ]]; then
        log "cloning CleanRL into $CLEANRL_DIR"
        mkdir -p "$CACHE_DIR"
        git clone -q https://github.com/vwxyzjn/cleanrl "$CLEANRL_DIR"
    fi
    if ! git -C "$CLEANRL_DIR" cat-file -e "$CLEANRL_COMMIT^{commit}" 2>/dev/null; then
        git -C "$CLEANRL_DIR" fetch -q origin
    fi
    git -C "$CLEANRL_DIR" checkout -q --detach "$CLEANRL_COMMIT"
fi
CLEANRL_HEAD=$(git -C "$CLEANRL_DIR" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ $CLEANRL_HEAD != "$CLEANRL_COMMIT" ]]; then
    log "warning: CleanRL at $CLEANRL_HEAD, not the pinned $CLEANRL_COMMIT"
fi
log "CleanRL: $CLEANRL_DIR ($CLEANRL_HEAD)"

# --- CleanRL's venv, pinned to the checkout's requirements files ---------------------------
find_cleanrl_python() {
    local c
    local cands=(python3.10 python3.9 python3.8)
    if command -v pyenv >/dev/null 2>&1; then
        for c in "$(pyenv root)"/versions/3.{10,9,8}*/bin/python; do cands+=("$c"); done
    fi
    for c in "${cands[@]}"; do
        if "$c" -c 'import sys; assert (3, 8) <= sys.version_info[:2] < (3, 11)' >/dev/null 2>&1; then
            "$c" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}

PKGS=(torch gymnasium numpy tyro tensorboard ale-py shimmy opencv-python rich psutil)
if [[ " $CLEANRL_PPO " == *" ppo_atari_envpool "* ]]; then PKGS+=(gym envpool); fi
CONSTRAINTS=$OUT/cleanrl-constraints.txt
cat "$CLEANRL_DIR"/requirements/requirements-atari.txt "$CLEANRL_DIR"/requirements/requirements-envpool.txt |
    sed -e 's/[[:space:]]*#.*//' | grep -v -e '^-e' -e '^[[:space:]]*$' | sort -u >"$CONSTRAINTS"
STAMP="$CLEANRL_HEAD ${PKGS[*]} ${CLEANRL_PIP_ARGS:-}"
VPY=$CLEANRL_VENV/bin/python
if [[ ! -x $VPY || "$(cat "$CLEANRL_VENV/.bench-compare" 2>/dev/null)" != "$STAMP" ]]; then
    if [[ ! -x $VPY ]]; then
        CPY=${CLEANRL_PYTHON:-$(find_cleanrl_python)} ||
            die "no Python 3.8-3.10 found for CleanRL (set CLEANRL_PYTHON)"
        log "creating $CLEANRL_VENV with $CPY"
        "$CPY" -m venv "$CLEANRL_VENV"
    fi
    log "installing ${PKGS[*]} pinned by $CLEANRL_DIR/requirements (torch's wheel is large)"
    # shellcheck disable=SC2086 # CLEANRL_PIP_ARGS is a list of words
    "$VPY" -m pip install -q -c "$CONSTRAINTS" ${CLEANRL_PIP_ARGS:-} "${PKGS[@]}" >&2
    printf '%s\n' "$STAMP" >"$CLEANRL_VENV/.bench-compare"
fi
if ! "$VPY" -c 'import ale_py.roms as r; r.Pong; r.Breakout' >/dev/null 2>&1; then
    ROMS=${ALE_ROM_DIR:-$("$PYTHON" -c 'import ale_py, os; print(os.path.join(os.path.dirname(ale_py.__file__), "roms"))' 2>/dev/null || true)}
    if [[ -n $ROMS && -f $ROMS/pong.bin && -f $ROMS/breakout.bin ]]; then
        log "importing the ROMs of $ROMS into CleanRL's ale-py"
        "$CLEANRL_VENV/bin/ale-import-roms" "$ROMS" >"$OUT/ale-import-roms.log" 2>&1
    else
        log "no ROM folder found: installing CleanRL's AutoROM[accept-rom-license] (downloads the ROMs)"
        # shellcheck disable=SC2086
        "$VPY" -m pip install -q -c "$CONSTRAINTS" ${CLEANRL_PIP_ARGS:-} "autorom[accept-rom-license]" >&2
    fi
    "$VPY" -c 'import ale_py.roms as r; r.Pong; r.Breakout' >/dev/null 2>&1 ||
        die "CleanRL's ale-py has no Pong/Breakout ROM (set ALE_ROM_DIR)"
fi

# --- libtorch for the train binary ---------------------------------------------------------
if TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))' 2>/dev/null); then
    export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    CARTRIDGE_TORCH=$("$PYTHON" -c 'import torch; print(torch.__version__)')
else
    log "no torch in $PYTHON: train must find libtorch through its RUNPATH or LD_LIBRARY_PATH"
    CARTRIDGE_TORCH=unknown
fi

# --- JSON helpers (CleanRL's venv python: it has tensorboard to read event files) --------
read -r -d '' PY <<'PYEOF' || true
import glob, json, os, platform, signal, statistics, subprocess, sys, time

def last_json(path):
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict):
                return v
    return None

def tail(path, n=12):
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return []
    return [l[-300:] for l in lines if l.strip()][-n:]

def scalars(run_dir, tag):
    """{step: (wall_time, value)} of TAG in the event files under RUN_DIR/runs."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util
    out = {}
    for f in sorted(glob.glob(os.path.join(run_dir, "runs", "*", "events.out.tfevents.*"))):
        for ev in EventFileLoader(f).Load():
            for v in ev.summary.value:
                if v.tag == tag:
                    # EventFileLoader migrates simple_value scalars into tensors
                    val = (float(tensor_util.make_ndarray(v.tensor)) if v.HasField("tensor")
                           else v.simple_value)
                    out[ev.step] = (ev.wall_time, val)
    return out

def cpu_share(samples, a, b):
    """CPU seconds per second the process used between times a and b (linear between samples)."""
    def at(t):
        if not samples or t < samples[0][0] or t > samples[-1][0]:
            return None
        for (t0, c0), (t1, c1) in zip(samples, samples[1:]):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c0
        return samples[-1][1]
    ca, cb = at(a), at(b)
    return None if ca is None or cb is None or b <= a else round((cb - ca) / (b - a), 3)

mode = sys.argv[1]
if mode == "run":
    # run TAG DIR TIMEOUT CMD...: runs CMD in DIR, its output to OUT/TAG.{stdout,stderr}, its
    # exit code, wall time and CPU time (user + system, all its threads) to OUT/TAG.run.json
    import resource
    tag, cwd, limit = sys.argv[2], sys.argv[3], float(sys.argv[4])
    cmd = sys.argv[5:]
    base = os.path.join(os.environ["OUT"], tag)
    with open(base + ".stdout", "wb") as so, open(base + ".stderr", "wb") as se:
        t0 = time.time()
        ag = os.environ.get("AUTOGROUP_NICE", "")

        def prio():  # runs in the child, in its new session (a new scheduler autogroup)
            if ag:
                with open("/proc/self/autogroup", "w") as f:
                    f.write(ag)

        p = subprocess.Popen(cmd, cwd=cwd, stdout=so, stderr=se, start_new_session=True,
                             preexec_fn=prio)
        # (time, CPU seconds of the process, all threads) every half second, from /proc
        samples, tick, rc = [], os.sysconf("SC_CLK_TCK"), None
        while rc is None:
            try:
                f = open("/proc/%d/stat" % p.pid).read().rsplit(")", 1)[1].split()
                samples.append((round(time.time(), 3), (int(f[11]) + int(f[12])) / tick))
            except (OSError, IndexError, ValueError):
                pass
            try:
                rc = p.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if time.time() - t0 > limit:
                    os.killpg(p.pid, signal.SIGTERM)
                    try:
                        p.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait()
                    rc = 124
        t1 = time.time()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = ru.ru_utime + ru.ru_stime
    json.dump({"rc": rc, "t0": t0, "t1": t1, "wall_s": round(t1 - t0, 2),
               "cpu_s": round(cpu, 2), "cpu_per_wall": round(cpu / (t1 - t0), 3),
               "cmd": " ".join(cmd), "cwd": cwd, "autogroup_nice": ag or None,
               "cpu_samples": samples},
              open(base + ".run.json", "w"))
elif mode == "measure":
    # measure ROUND BENCH IMPL TAG KIND ARGS...
    rnd, bench, impl, tag, kind = sys.argv[2:7]
    args = sys.argv[7:]
    base = os.path.join(os.environ["OUT"], tag)
    run = json.load(open(base + ".run.json"))
    out = {"round": int(rnd), "bench": bench, "impl": impl, "ok": False, "steps_per_s": None,
           "cpu_per_wall": run["cpu_per_wall"], "wall_s": run["wall_s"], "rc": run["rc"],
           "started": time.strftime("%H:%M:%S", time.localtime(run["t0"])),
           "loadavg_before": float(args[-1]), "autogroup_nice": run["autogroup_nice"],
           "cmd": run["cmd"]}
    args = args[:-1]
    errors = []
    if run["rc"] != 0:
        errors.append("exit code %d" % run["rc"])
    if kind == "cartridge":
        # cartridge KEY TIMED_STEPS
        res = last_json(base + ".stdout")
        out["detail"] = res
        if res is None:
            errors.append("no JSON line on stdout")
        elif not isinstance(res.get(args[0]), (int, float)):
            errors.append("no %s in the JSON line" % args[0])
        else:
            out["steps_per_s"] = round(res[args[0]], 2)
            # the timed steps are the process's last ones (its end: the last CPU sample)
            smp = run["cpu_samples"]
            if smp and res[args[0]] > 0:
                end = smp[-1][0]
                out["cpu_share_window"] = cpu_share(smp, end - int(args[1]) / res[args[0]], end)
    else:
        # cleanrl TAG FROM_STEP TO_STEP
        etag, s1, s2 = args[0], int(args[1]), int(args[2])
        run_dir = os.path.join(os.environ["OUT"], tag)
        try:
            pts, sps = scalars(run_dir, etag), scalars(run_dir, "charts/SPS")
        except Exception as e:
            pts, sps = {}, {}
            errors.append("reading the event file: %r" % e)
        if s1 in pts and s2 in pts and pts[s2][0] > pts[s1][0]:
            secs = pts[s2][0] - pts[s1][0]
            out["steps_per_s"] = round((s2 - s1) / secs, 2)
            out["cpu_share_window"] = cpu_share(run["cpu_samples"], pts[s1][0], pts[s2][0])
            out["detail"] = {"event_tag": etag, "from_step": s1, "to_step": s2,
                             "seconds": round(secs, 3),
                             "logged_sps_at_end": sps[max(sps)][1] if sps else None}
        elif not errors:
            errors.append("no %s events at steps %d and %d (found %d)" % (etag, s1, s2, len(pts)))
    if errors:
        out["errors"] = errors
        out["stderr_tail"] = tail(base + ".stderr")
    out["ok"] = not errors
    print(json.dumps(out))
elif mode == "setup":
    from importlib import metadata
    cleanrl_dir, head, train, cartridge_torch, core, rounds = sys.argv[2:8]
    pk = {}
    for n in ("torch", "gymnasium", "gym", "numpy", "ale-py", "shimmy", "envpool",
              "opencv-python", "tyro", "tensorboard"):
        try:
            pk[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    import torch
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import hashlib
    h = hashlib.sha256()
    with open(train, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    print(json.dumps({"setup": {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu": model, "nproc": os.cpu_count(),
        "core": int(core), "rounds": int(rounds), "loadavg": os.getloadavg()[0],
        "autogroup_nice": os.environ.get("AUTOGROUP_NICE") or None,
        "precision": os.environ.get("PRECISION") or None,
        "sched_autogroup_enabled": open("/proc/sys/kernel/sched_autogroup_enabled").read().strip()
        if os.path.exists("/proc/sys/kernel/sched_autogroup_enabled") else None,
        "cleanrl_dir": cleanrl_dir, "cleanrl_commit": head,
        "cleanrl_python": platform.python_version(), "cleanrl_packages": pk,
        "cleanrl_torch_threads": torch.get_num_threads(),
        "train": train, "train_sha256": h.hexdigest(), "cartridge_libtorch": cartridge_torch}}))
elif mode == "summary":
    rows = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
    pairs = [("dqn", "cartridge", "cleanrl dqn_atari"),
             ("ppo", "cartridge", "cleanrl ppo_atari"),
             ("ppo", "cartridge", "cleanrl ppo_atari_envpool")]
    summary = []
    for bench, a, b in pairs:
        def vals(impl, key="steps_per_s"):
            return {r["round"]: r.get(key) for r in rows
                    if r["bench"] == bench and r["impl"] == impl and r["ok"]}
        va, vb = vals(a), vals(b)
        if not vb:
            continue
        s = {"bench": bench, "cartridge": sorted(va.items()), "cleanrl": b,
             "cleanrl_runs": sorted(vb.items()),
             "cartridge_mean": round(statistics.mean(va.values()), 2) if va else None,
             "cleanrl_mean": round(statistics.mean(vb.values()), 2)}
        s["ratio_of_means"] = round(s["cartridge_mean"] / s["cleanrl_mean"], 3) if va else None
        per = [va[r] / vb[r] for r in sorted(va) if r in vb]
        s["ratio_per_round"] = [round(x, 3) for x in per]
        s["cpu_share_window"] = {"cartridge": sorted(vals(a, "cpu_share_window").items()),
                                 "cleanrl": sorted(vals(b, "cpu_share_window").items())}
        summary.append(s)
    print(json.dumps({"summary": summary}))
    for s in summary:
        print("%-4s Cartridge %9s  vs %-27s %9s agent steps/s  ->  x%s (rounds: %s)" % (
            s["bench"], s["cartridge_mean"], s["cleanrl"], s["cleanrl_mean"],
            s["ratio_of_means"], ", ".join("%.2f" % x for x in s["ratio_per_round"])),
            file=sys.stderr)
PYEOF

export OUT
json() { "$VPY" -c "$PY" "$@"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

RESULTS=$OUT/measurements.jsonl
: >"$RESULTS"
FAILED=0

# measure ROUND BENCH IMPL TAG KIND KIND_ARGS... -- CMD...: runs CMD pinned to the core, with one
# thread, in OUT/TAG (CleanRL writes its runs/ there); prints and records the measurement line.
measure() {
    local rnd=$1 bench=$2 impl=$3 tag=$4 kind=$5 cwd
    shift 5
    local kargs=()
    while [[ $1 != -- ]]; do
        kargs+=("$1")
        shift
    done
    shift
    if [[ $kind == cartridge ]]; then cwd=$ROOT; else cwd=$OUT/$tag; fi
    mkdir -p "$OUT/$tag"
    local la
    la=$(loadavg)
    log "round $rnd: $bench $impl: $*"
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$CLEANRL_DIR \
        json run "$tag" "$cwd" "$MEASURE_TIMEOUT" taskset -c "$CORE" "$@"
    local line rc=0
    line=$(json measure "$rnd" "$bench" "$impl" "$tag" "$kind" "${kargs[@]}" "$la") || rc=$?
    if [[ -z $line ]]; then
        line="{\"round\": $rnd, \"bench\": \"$bench\", \"impl\": \"$impl\", \"ok\": false, \"steps_per_s\": null, \"errors\": [\"bench-compare.sh could not evaluate $tag\"]}"
    fi
    printf '%s\n' "$line" | tee -a "$RESULTS"
    if [[ $line != *'"ok": true'* ]]; then
        FAILED=1
        log "$tag failed (logs: $OUT/$tag.stderr)"
    else
        log "  -> $(printf '%s' "$line" | sed -n 's/^{[^{]*"steps_per_s": \([0-9.]*\).*/\1/p') agent steps/s, CPU share while timed: $(printf '%s' "$line" | sed -n 's/.*"cpu_share_window": \([0-9.a-z]*\).*/\1/p')"
    fi
}

cartridge_dqn() {
    measure "$1" dqn cartridge "r$1-dqn-cartridge" cartridge train_steps_per_s 4000 -- \
        "$TRAIN" dqn --rom pong --bench --buffer-size "$DQN_BUFFER" --threads 1 --env-threads 1 \
        --device cpu "${PRECISION_ARGS[@]}"
}
cleanrl_dqn() {
    local s1=$((DQN_LEARNING_STARTS + 100)) s2=$((DQN_LEARNING_STARTS + 4100))
    measure "$1" dqn "cleanrl dqn_atari" "r$1-dqn-cleanrl" cleanrl losses/td_loss "$s1" "$s2" -- \
        "$VPY" "$CLEANRL_DIR/cleanrl/dqn_atari.py" --env-id PongNoFrameskip-v4 \
        --buffer-size "$DQN_BUFFER" --learning-starts "$DQN_LEARNING_STARTS" \
        --total-timesteps $((s2 + 1)) --no-cuda
}
cartridge_ppo() {
    measure "$1" ppo cartridge "r$1-ppo-cartridge" cartridge steps_per_s 3072 -- \
        "$TRAIN" ppo --rom breakout --bench --threads 1 --env-threads 1 --device cpu \
            "${PRECISION_ARGS[@]}"
}
cleanrl_ppo() {
    local s env
    for s in $CLEANRL_PPO; do
        if [[ $s == ppo_atari_envpool ]]; then env=Breakout-v5; else env=BreakoutNoFrameskip-v4; fi
        measure "$1" ppo "cleanrl $s" "r$1-ppo-cleanrl-$s" cleanrl charts/SPS 1024 4096 -- \
            "$VPY" "$CLEANRL_DIR/cleanrl/$s.py" --env-id "$env" --total-timesteps 4096 --no-cuda
    done
}

log "train: $TRAIN (libtorch $CARTRIDGE_TORCH)"
log "output: $OUT"
OMP_NUM_THREADS=1 json setup "$CLEANRL_DIR" "$CLEANRL_HEAD" "$TRAIN" "$CARTRIDGE_TORCH" "$CORE" "$ROUNDS" |
    tee "$OUT/setup.json"

for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2 == 1)); then
        cartridge_dqn "$r"
        cleanrl_dqn "$r"
        cartridge_ppo "$r"
        cleanrl_ppo "$r"
    else
        cleanrl_dqn "$r"
        cartridge_dqn "$r"
        cleanrl_ppo "$r"
        cartridge_ppo "$r"
    fi
done

json summary "$RESULTS" | tee "$OUT/summary.json"
log "logs and CleanRL runs in $OUT"
exit "$FAILED"
