"""How much CleanRL's frame order changes what a trained agent sees and does.

    .venv/bin/python scripts/preprocessing-effect.py MODEL.onnx GAME [--games N] [--seed S]

Cartridge (like baselines and SB3) max-pools the last two RGB frames, grays them
(cv2 RGB2GRAY) and then resizes to 84x84 (cv2 INTER_AREA). CleanRL's gym scripts
(ppo_atari.py, dqn_atari.py, ppo_atari_lstm.py) resize the max-pooled RGB frame first and gray
it after (gymnasium ResizeObservation, then GrayScaleObservation). envpool, behind
ppo_atari_envpool.py, grays each frame with ALE's palette, max-pools the gray frames, then
resizes; ALE's palette gray is not reproduced here.

The agent (a Cartridge model) plays GAME on the ALE from ale-py, sampling from its policy,
with each variant deciding in turn over the same number of games and seeds. On every
decision of the "cartridge" games both observations are built from the same RGB frames, and
the script reports the pixel difference and how often the policy's greedy action and its
action distribution differ. Life loss: FIRE (no EpisodicLife reset), the same in both
variants. Prints one JSON line.
"""

import argparse
import json

import cv2
import numpy as np
import onnxruntime as ort
from ale_py import ALEInterface, roms


def cartridge_frame(rgb):
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA)


def cleanrl_frame(rgb):
    return cv2.cvtColor(cv2.resize(rgb, (84, 84), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)


def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def play(session, ale, actions, decide_on, rng, stats, max_steps=27_000):
    """One game; the policy decides on `decide_on`'s frames. Returns the raw score."""
    ale.reset_game()
    for _ in range(rng.integers(1, 31)):
        ale.act(0)
    stacks = {"cartridge": [], "cleanrl": []}
    score, lives, prev = 0.0, ale.lives(), ale.getScreenRGB()
    for step in range(max_steps):
        rgb = np.maximum(prev, ale.getScreenRGB())
        for name, fn in (("cartridge", cartridge_frame), ("cleanrl", cleanrl_frame)):
            f = fn(rgb)
            stacks[name] = (stacks[name] or [f] * 4)[1:] + [f]
        obs = {k: np.stack(v)[None] for k, v in stacks.items()}
        logits = {k: session.run(None, {"obs": o})[0][0] for k, o in obs.items()}
        if stats is not None:
            a, b = obs["cartridge"].astype(int), obs["cleanrl"].astype(int)
            stats["pixels_differing"].append(float((a != b).mean()))
            stats["mean_abs_diff"].append(float(np.abs(a - b).mean()))
            stats["max_abs_diff"] = max(stats["max_abs_diff"], int(np.abs(a - b).max()))
            p, q = softmax(logits["cartridge"]), softmax(logits["cleanrl"])
            stats["greedy_differs"].append(float(p.argmax() != q.argmax()))
            stats["total_variation"].append(float(0.5 * np.abs(p - q).sum()))
        probs = softmax(logits[decide_on])
        action = actions[rng.choice(len(actions), p=probs)]
        for i in range(4):  # MaxAndSkip(4): the max of the last two frames
            score += ale.act(action)
            if i == 2:
                prev = ale.getScreenRGB()
        if ale.game_over():
            break
        if ale.lives() < lives and 1 in actions:
            ale.act(1)
        lives = ale.lives()
    return score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("game")
    ap.add_argument("--games", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(args.model, opts)
    ale = ALEInterface()
    ale.setFloat("repeat_action_probability", 0.0)
    ale.setInt("random_seed", args.seed)
    ale.loadROM(roms.get_rom_path(args.game))
    actions = list(ale.getMinimalActionSet())
    stats = {"pixels_differing": [], "mean_abs_diff": [], "max_abs_diff": 0,
             "greedy_differs": [], "total_variation": []}
    scores = {"cartridge": [], "cleanrl": []}
    for g in range(args.games):
        for variant in scores:
            rng = np.random.default_rng(args.seed * 1000 + g)
            scores[variant].append(play(session, ale, actions, variant, rng,
                                        stats if variant == "cartridge" else None))
    out = {"model": args.model, "game": args.game, "games": args.games,
           "decisions": len(stats["greedy_differs"])}
    for k in ("pixels_differing", "mean_abs_diff", "greedy_differs", "total_variation"):
        out[k] = float(np.mean(stats[k]))
    out["max_abs_diff"] = stats["max_abs_diff"]
    for k, v in scores.items():
        out[f"score_{k}_mean"] = float(np.mean(v))
        out[f"score_{k}_std"] = float(np.std(v))
    out["scores"] = scores
    print(json.dumps(out))


if __name__ == "__main__":
    main()
