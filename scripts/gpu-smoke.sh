#!/usr/bin/env bash
# GPU smoke run of a prebuilt `train` binary: is the GPU seen, how fast are PPO and DQN on it,
# and do checkpoints save and resume on CUDA (including a CPU checkpoint continued on CUDA)?
#
# Usage: scripts/gpu-smoke.sh [TRAIN_BIN] [OUT_DIR]
#   TRAIN_BIN  the train binary (default: target/release/train)
#   OUT_DIR    folder for the runs and the logs of every command (default: a fresh mktemp -d)
#
# Environment:
#   ALE_ROM_DIR    folder holding breakout.bin (e.g. ale-py's ale_py/roms). train reads it; when
#                  unset, train looks in ./roms, then in the ale-py of .venv and of python3.
#   PYTHON         python with torch 2.11.0 (default: python3). When `import torch` works, its
#                  torch/lib is put first on LD_LIBRARY_PATH, so a binary built on another
#                  machine finds this machine's libtorch.
#   CHECK_TIMEOUT  seconds allowed to each train command (default: 300)
#
# Output: one JSON object per check on stdout ({"check": NAME, "ok": true|false, ...}), ending
# with {"check":"summary","ok":...,"failed":[...]}; progress and logs go to stderr. Every check
# runs even when an earlier one failed; the exit status is 1 when any check failed.
set -euo pipefail

TRAIN=${1:-target/release/train}
OUT=${2:-}
if [[ -z $OUT ]]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/gpu-smoke.XXXXXX")
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python3}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-300}
NPROC=$(nproc)

log() { printf '[gpu-smoke] %s\n' "$*" >&2; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "error: $PYTHON not found; this script writes its JSON with python3 (set PYTHON=...)"
    exit 2
fi

FAILED=()

# --- JSON helpers (python3) ----------------------------------------------------------------
# phase TAG RC T0 T1 STDOUT STDERR CMD...  -> one JSON object describing one command
# check NAME KIND [ARG...] PHASE_FILE...   -> the check line (see the kinds below)
read -r -d '' PY <<'PYEOF' || true
import json, os, re, sys

def last_json(path):
    """The last line of a file that parses as a JSON object, or None."""
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

def tail(path, n=15):
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except OSError:
        return []
    return [l[-300:] for l in lines if l.strip()][-n:]

mode = sys.argv[1]
if mode == "phase":
    tag, rc, t0, t1, so, se = sys.argv[2:8]
    cmd = sys.argv[8:]
    rc = int(rc)
    result = last_json(so)
    text = open(se, encoding="utf-8", errors="replace").read() if os.path.exists(se) else ""
    m = re.search(r" on (Cuda\(\d+\)|Cpu),", text)
    r = re.search(r"resuming at step (\d+)", text)
    p = {"phase": tag, "cmd": " ".join(cmd), "rc": rc,
         "wall_s": round(float(t1) - float(t0), 2), "result": result}
    if result and "device" in result:
        p["device"] = result["device"]
    elif m:
        p["device"] = m.group(1)
    if r:
        p["resumed_from"] = int(r.group(1))
    if rc != 0 or result is None:
        p["stderr_tail"] = tail(se)
    print(json.dumps(p))
elif mode == "check":
    name, kind = sys.argv[2], sys.argv[3]
    args = sys.argv[4:]
    errors = []
    if kind == "bench":
        # check NAME bench KEY,KEY,... PHASE_FILE
        keys, phase = args[0].split(","), json.load(open(args[1]))
        out = {"check": name, "ok": False, "rc": phase["rc"], "wall_s": phase["wall_s"],
               "cmd": phase["cmd"], "bench": phase["result"]}
        b = phase["result"]
        if phase["rc"] != 0:
            errors.append("exit code %d" % phase["rc"])
        if b is None:
            errors.append("no JSON line on stdout")
        else:
            if not str(b.get("device", "")).startswith("Cuda"):
                errors.append("device is %r, not Cuda" % b.get("device"))
            for k in keys:
                v = b.get(k)
                if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
                    errors.append("%s is %r, expected a number > 0" % (k, v))
        if "stderr_tail" in phase:
            out["stderr_tail"] = phase["stderr_tail"]
    elif kind == "resume":
        # check NAME resume FIRST_STEP FINAL_STEP FIRST_DEVICE CKPT_FILE PHASE_FILE...
        first_step, final_step, first_dev = int(args[0]), int(args[1]), args[2]
        ckpt = json.load(open(args[3])) if os.path.isfile(args[3]) else None
        phases = [json.load(open(f)) for f in args[4:]]
        out = {"check": name, "ok": False, "global_step": None, "phases": []}
        for i, p in enumerate(phases):
            res = p.pop("result") or {}
            p["global_step"] = res.get("global_step")
            p["interrupted"] = res.get("interrupted")
            want_step = first_step if i == 0 else final_step
            want_dev = first_dev if i == 0 else "Cuda"
            if p["rc"] != 0:
                errors.append("%s: exit code %d" % (p["phase"], p["rc"]))
            elif not res:
                errors.append("%s: no summary JSON line on stdout" % p["phase"])
            else:
                if p["global_step"] != want_step:
                    errors.append("%s: global_step %r, expected %d"
                                  % (p["phase"], p["global_step"], want_step))
                if p["interrupted"] is not False:
                    errors.append("%s: interrupted is %r" % (p["phase"], p["interrupted"]))
                if "device" in p and not p["device"].startswith(want_dev):
                    errors.append("%s: ran on %s, expected %s" % (p["phase"], p["device"], want_dev))
            out["phases"].append(p)
            if i == 0 and ckpt is not None:
                if not ckpt.pop("ok"):
                    errors.append("checkpoint: " + ckpt["error"])
                out["phases"].append(ckpt)
        if len(phases) > 1:
            out["global_step"] = out["phases"][-1]["global_step"]
        elif not errors:
            errors.append("resume did not run")
    else:
        raise SystemExit("unknown check kind " + kind)
    out["ok"] = not errors
    if errors:
        out["errors"] = errors
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)
elif mode == "ckpt":
    # ckpt RUN: the checkpoint RUN/checkpoints/latest names (what a resume starts from)
    root = os.path.join(sys.argv[2], "checkpoints")
    ck = {"phase": "checkpoint", "ok": False, "latest": None}
    try:
        ck["latest"] = open(os.path.join(root, "latest")).read().strip()
    except OSError:
        ck["error"] = os.path.join(root, "latest") + " is missing"
    if ck["latest"]:
        files = {f: os.path.getsize(os.path.join(root, ck["latest"], f))
                 for f in ("model.safetensors", "optimizer.safetensors", "state.json")
                 if os.path.isfile(os.path.join(root, ck["latest"], f))}
        ck["files_bytes"] = files
        if "model.safetensors" in files:
            ck["ok"] = True
        else:
            ck["error"] = ck["latest"] + " has no model.safetensors"
    print(json.dumps(ck))
    sys.exit(0 if ck["ok"] else 1)
elif mode == "gpu":
    # gpu SMI_RC SMI_FILE TORCH_FILE LIBTORCH_CUDA
    rc, smi, torch_file, ltc, nproc = sys.argv[2:7]
    rc = int(rc)
    gpus = []
    if rc == 0:
        for line in open(smi).read().splitlines():
            f = [x.strip() for x in line.split(",")]
            if len(f) >= 3:
                g = {"name": f[0], "driver": f[1], "memory": f[2]}
                if len(f) >= 4:
                    g["compute_cap"] = f[3]
                gpus.append(g)
    torch_info = last_json(torch_file)
    out = {"check": "gpu", "ok": rc == 0 and len(gpus) > 0, "gpus": gpus,
           "torch": torch_info, "libtorch_cuda": ltc or None,
           "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
           "ale_rom_dir": os.environ.get("ALE_ROM_DIR"), "nproc": int(nproc)}
    if rc != 0:
        out["errors"] = ["nvidia-smi missing or failed (exit code %d)" % rc]
        out["stderr_tail"] = tail(smi)
    elif not gpus:
        out["errors"] = ["nvidia-smi lists no GPU"]
    print(json.dumps(out))
    sys.exit(0 if out["ok"] else 1)
elif mode == "summary":
    out_dir, failed = sys.argv[2], sys.argv[3:]
    print(json.dumps({"check": "summary", "ok": not failed, "failed": failed, "out": out_dir}))
PYEOF

json() { "$PYTHON" -c "$PY" "$@"; }

now() { date +%s.%N; }

# run_phase TAG CMD...: runs one command under the time limit; its stdout and stderr go to
# $OUT/TAG.stdout and $OUT/TAG.stderr, its description to $OUT/TAG.json. Sets PHASE_RC.
run_phase() {
    local tag=$1
    shift
    local so="$OUT/$tag.stdout" se="$OUT/$tag.stderr" t0 t1
    log "$tag: $*"
    t0=$(now)
    PHASE_RC=0
    timeout -k 15 "$CHECK_TIMEOUT" "$@" >"$so" 2>"$se" || PHASE_RC=$?
    t1=$(now)
    tail -n 3 "$se" | sed "s/^/[gpu-smoke]   $tag: /" >&2 || true
    log "$tag: exit code $PHASE_RC"
    json phase "$tag" "$PHASE_RC" "$t0" "$t1" "$so" "$se" "$@" >"$OUT/$tag.json" ||
        printf '{"phase":"%s","cmd":"","rc":%d,"wall_s":null,"result":null}\n' \
            "$tag" "$PHASE_RC" >"$OUT/$tag.json"
}

# record NAME RC LINE: prints a check line (or a failure line when LINE is empty) and
# records NAME as failed when RC is not 0.
record() {
    local name=$1 rc=$2 line=$3
    if [[ -z $line ]]; then
        line="{\"check\": \"$name\", \"ok\": false, \"errors\": [\"gpu-smoke.sh could not evaluate this check\"]}"
        rc=1
    fi
    printf '%s\n' "$line"
    if ((rc != 0)); then
        FAILED+=("$name")
    fi
}

# emit NAME KIND ARGS...: evaluates a check from its phase files (python's "check" mode).
emit() {
    local name=$1 line rc=0
    shift
    line=$(json check "$name" "$@") || rc=$?
    record "$name" "$rc" "$line"
}

log "train: $TRAIN"
log "output: $OUT"
log "ALE_ROM_DIR: ${ALE_ROM_DIR:-(unset: train searches ./roms and ale-py)}"

# --- libtorch for the binary ---------------------------------------------------------------
TORCH_JSON="$OUT/torch.json"
if "$PYTHON" - >"$TORCH_JSON" 2>"$OUT/torch.stderr" <<'PYEOF'; then
import json, os, torch
d = {"version": torch.__version__, "cuda": torch.version.cuda,
     "lib": os.path.join(os.path.dirname(torch.__file__), "lib")}
try:
    d["cuda_available"] = torch.cuda.is_available()
    d["arch_list"] = torch.cuda.get_arch_list()
    if not d["arch_list"]:  # empty without a usable GPU: ask the build itself
        d["arch_list"] = torch._C._cuda_getArchFlags().split()
    if d["cuda_available"]:
        d["capability"] = "sm_%d%d" % torch.cuda.get_device_capability(0)
except Exception as e:  # report, do not fail: train's own checks follow
    d["error"] = str(e)
print(json.dumps(d))
PYEOF
    TORCH_LIB=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["lib"])' "$TORCH_JSON")
    export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    log "LD_LIBRARY_PATH starts with $TORCH_LIB"
else
    log "no torch in $PYTHON: train must find libtorch through its RUNPATH or LD_LIBRARY_PATH"
fi

# --- check: gpu ------------------------------------------------------------------------------
SMI="$OUT/nvidia-smi.txt"
SMI_RC=0
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader \
        >"$SMI" 2>&1 ||
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
            >"$SMI" 2>&1 || SMI_RC=$?
else
    echo "nvidia-smi: command not found" >"$SMI"
    SMI_RC=127
fi
LIBTORCH_CUDA=""
if [[ -e $TRAIN ]]; then
    # "=> /path/libtorch_cuda.so" where the loader finds it, "=> not found" where it does not.
    LIBTORCH_CUDA=$(ldd "$TRAIN" 2>/dev/null |
        awk '/libtorch_cuda\.so/ {sub(/^[^=]*=> */, ""); sub(/ \(0x.*$/, ""); print; exit}') || true
fi
GPU_RC=0
line=$(json gpu "$SMI_RC" "$SMI" "$TORCH_JSON" "$LIBTORCH_CUDA" "$NPROC") || GPU_RC=$?
record gpu "$GPU_RC" "$line"

# --- checks: throughput ------------------------------------------------------------------
PPO_KEYS=steps_per_s,env_s,env_busy_s,inference_s,update_s
run_phase ppo_bench_8 "$TRAIN" ppo --rom breakout --bench --device cuda
emit ppo_bench_8 bench "$PPO_KEYS" "$OUT/ppo_bench_8.json"

run_phase ppo_bench_64 "$TRAIN" ppo --rom breakout --bench --device cuda \
    --num-envs 64 --env-threads "$NPROC"
emit ppo_bench_64 bench "$PPO_KEYS" "$OUT/ppo_bench_64.json"

# The same two with the rollout pipelined in 2 environment groups (--env-groups 2).
run_phase ppo_bench_8_groups2 "$TRAIN" ppo --rom breakout --bench --device cuda --env-groups 2
emit ppo_bench_8_groups2 bench "$PPO_KEYS" "$OUT/ppo_bench_8_groups2.json"

run_phase ppo_bench_64_groups2 "$TRAIN" ppo --rom breakout --bench --device cuda \
    --num-envs 64 --env-threads "$NPROC" --env-groups 2
emit ppo_bench_64_groups2 bench "$PPO_KEYS" "$OUT/ppo_bench_64_groups2.json"

run_phase dqn_bench "$TRAIN" dqn --rom breakout --bench --device cuda \
    --buffer-size 20000 --learning-starts 1000
emit dqn_bench bench fill_steps_per_s,train_steps_per_s,gradient_steps_per_s,peak_rss_bytes \
    "$OUT/dqn_bench.json"

# --- checks: checkpoints -----------------------------------------------------------------
# save_resume NAME FIRST_DEVICE_FLAGS...: a 2,048-step run (two iterations of 8 envs x 128
# steps) on the given device, then resumed on CUDA and extended to 4,096 steps.
save_resume() {
    local name=$1 run
    shift
    run="$OUT/$name"
    rm -rf "$run"
    local first_dev=Cuda
    [[ " $* " == *" cpu "* ]] && first_dev=Cpu
    run_phase "$name.train" "$TRAIN" ppo --rom breakout --out "$run" --total-timesteps 2048 \
        --num-envs 8 --num-steps 128 --eval-episodes 0 --save-every 1024 "$@"
    local phases=("$OUT/$name.train.json") ckpt="$OUT/$name.checkpoint.json"
    if json ckpt "$run" >"$ckpt"; then
        run_phase "$name.resume" "$TRAIN" ppo --resume "$run" --device cuda \
            --total-timesteps 4096 --eval-episodes 0
        phases+=("$OUT/$name.resume.json")
    else
        log "$name: no usable checkpoint in $run, resume skipped"
    fi
    emit "$name" resume 2048 4096 "$first_dev" "$ckpt" "${phases[@]}"
}

save_resume cuda_save_resume --device cuda
save_resume cpu_to_cuda_resume --device cpu --threads 2

# --- summary -----------------------------------------------------------------------------
json summary "$OUT" "${FAILED[@]}"
if ((${#FAILED[@]})); then
    log "failed: ${FAILED[*]} (logs in $OUT)"
    exit 1
fi
log "all checks passed (logs in $OUT)"
