#!/usr/bin/env python3
"""PyTorch's compute floor of one PPO or DQN iteration on this machine, no environment.

PPO (CleanRL ppo_atari.py defaults): num_steps batch-8 no-grad forwards of the Nature CNN
actor-critic, then update_epochs x num_minibatches forward + backward + Adam steps of a
PPO-shaped loss on minibatches of 256. DQN (dqn_atari.py): train_frequency (4) batch-1
forwards and one forward of the target network plus one forward + backward + Adam of the online
network on a minibatch of 32, per gradient step.

Precisions: fp32; fp32 with channels-last; bf16 = torch.autocast(bfloat16) + channels-last
(what a PyTorch user would write). Rounds alternate between the precisions; one JSON line per
measurement and a summary line with the best round of each:
    {"algo":"ppo","precision":"bf16","threads":2,"steps_per_s":...}

Usage: .venv/bin/python scripts/torch-floor.py [--algo ppo|dqn|lstm] [--threads N] [--rounds 3]
       [--modes fp32,fp32-channels-last,bf16]
"""
import argparse
import json
import time

import torch
import torch.nn as nn


def nature(in_ch):
    return nn.Sequential(
        nn.Conv2d(in_ch, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(3136, 512), nn.ReLU())


class ActorCritic(nn.Module):
    def __init__(self, n_actions, lstm=False):
        super().__init__()
        self.network = nature(1 if lstm else 4)
        self.lstm = nn.LSTM(512, 128) if lstm else None
        width = 128 if lstm else 512
        self.actor = nn.Linear(width, n_actions)
        self.critic = nn.Linear(width, 1)

    def forward(self, x):
        h = self.network(x / 255.0)
        if self.lstm is not None:
            # One sequence per minibatch row group: time-major [T, B, 512] (ppo_atari_lstm.py
            # steps it one step at a time; one call is PyTorch's fastest form of it).
            t = h.shape[0] // 8 if h.shape[0] >= 8 else 1
            h, _ = self.lstm(h.view(t, -1, 512))
            h = h.reshape(-1, 128)
        return self.actor(h), self.critic(h)


def ppo_iteration(model, opt, ctx, cl, lstm):
    planes = 1 if lstm else 4
    fmt = torch.channels_last if cl else torch.contiguous_format
    obs8 = torch.randint(0, 256, (8, planes, 84, 84), dtype=torch.uint8).float()
    obs8 = obs8.contiguous(memory_format=fmt)
    with torch.no_grad(), ctx():
        for _ in range(128):
            model(obs8)
    mb = torch.randint(0, 256, (256, planes, 84, 84), dtype=torch.uint8).float()
    mb = mb.contiguous(memory_format=fmt)
    actions = torch.randint(0, 4, (256,))
    for _ in range(16):
        with ctx():
            logits, value = model(mb)
        logp = torch.log_softmax(logits.float(), -1).gather(1, actions[:, None]).squeeze(1)
        loss = -(logp * 0.1).mean() + 0.5 * (value.float().squeeze(1) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
    return 1024


def dqn_iteration(model, target, opt, ctx, cl):
    fmt = torch.channels_last if cl else torch.contiguous_format
    one = torch.randint(0, 256, (1, 4, 84, 84), dtype=torch.uint8).float()
    one = one.contiguous(memory_format=fmt)
    obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8).float()
    obs = obs.contiguous(memory_format=fmt)
    actions = torch.randint(0, 4, (32,))
    steps = 0
    for _ in range(100):
        with torch.no_grad(), ctx():
            for _ in range(4):
                model(one)
            y = target(obs).float().max(1).values
        with ctx():
            q = model(obs).float().gather(1, actions[:, None]).squeeze(1)
        loss = nn.functional.mse_loss(q, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 4
    return steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--algo", default="ppo", choices=["ppo", "dqn", "lstm"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--modes", default="fp32,fp32-channels-last,bf16",
                   help="comma-separated subset of fp32, fp32-channels-last, bf16")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    modes = {
        "fp32": (False, False),
        "fp32-channels-last": (False, True),
        "bf16": (True, True),
    }
    modes = {k: v for k, v in modes.items() if k in a.modes.split(",")}
    best = {}
    for r in range(a.rounds + 1):
        for name, (bf16, cl) in modes.items():
            fmt = torch.channels_last if cl else torch.contiguous_format
            if a.algo == "dqn":
                model = nn.Sequential(nature(4), nn.Linear(512, 6)).to(memory_format=fmt)
                target = nn.Sequential(nature(4), nn.Linear(512, 6)).to(memory_format=fmt)
            else:
                model = ActorCritic(6, lstm=a.algo == "lstm").to(memory_format=fmt)
            opt = torch.optim.Adam(model.parameters(), lr=2.5e-4, eps=1e-5)

            def ctx():
                return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

            t0 = time.perf_counter()
            if a.algo == "dqn":
                steps = dqn_iteration(model, target, opt, ctx, cl)
            else:
                steps = ppo_iteration(model, opt, ctx, cl, a.algo == "lstm")
            sps = steps / (time.perf_counter() - t0)
            if r == 0:
                continue  # warm-up round (oneDNN primitive creation)
            line = {"algo": a.algo, "precision": name, "threads": a.threads,
                    "round": r, "steps_per_s": round(sps, 1)}
            print(json.dumps(line), flush=True)
            best[name] = max(best.get(name, 0.0), sps)
    print(json.dumps({"algo": a.algo, "threads": a.threads, "best_steps_per_s":
                      {k: round(v, 1) for k, v in best.items()}}))


if __name__ == "__main__":
    main()
