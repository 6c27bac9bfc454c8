"""A policy-gradient (REINFORCE) loop on a toy environment, no DataLoader: each episode
calls the policy once per environment step (20-40 small forwards), then runs one
backward over the whole episode and one optimizer step: one training step per episode.

Options: --episodes N --min-len A --max-len B (episode lengths, drawn per episode)
--env-cost S (each environment step sleeps S seconds).
Prints "loss <i> <repr>" per episode (the loss backward() runs on) and
"forwards <i> <n>".
"""
import argparse
import random
import time

import torch
from torch import nn
from torch.distributions import Categorical

ap = argparse.ArgumentParser()
ap.add_argument("--episodes", type=int, default=6)
ap.add_argument("--min-len", type=int, default=20)
ap.add_argument("--max-len", type=int, default=40)
ap.add_argument("--env-cost", type=float, default=0.0)
args = ap.parse_args()


class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        return torch.softmax(self.net(x), dim=-1)


class Env:
    """A point pushed left or right; reward for staying near the origin."""

    def reset(self):
        self.x = torch.zeros(4)
        self.left = random.randint(args.min_len, args.max_len)
        return self.x

    def step(self, action):
        time.sleep(args.env_cost)
        self.x = self.x + (0.1 if action else -0.1) + 0.05 * torch.randn(4)
        self.left -= 1
        return self.x, float(-self.x.abs().mean()), self.left == 0


random.seed(0)
torch.manual_seed(0)
policy, env = Policy(), Env()
opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
for episode in range(args.episodes):
    state, log_probs, rewards, done = env.reset(), [], [], False
    while not done:
        m = Categorical(policy(state.unsqueeze(0)))
        action = m.sample()
        log_probs.append(m.log_prob(action))
        state, reward, done = env.step(action.item())
        rewards.append(reward)
    returns, g = [], 0.0
    for r in reversed(rewards):
        g = r + 0.99 * g
        returns.insert(0, g)
    returns = torch.tensor(returns)
    returns = (returns - returns.mean()) / (returns.std() + 1e-6)
    loss = torch.cat([-lp * r for lp, r in zip(log_probs, returns)]).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    print("loss", episode, repr(loss.item()))
    print("forwards", episode, len(rewards))
print("done", args.episodes)
