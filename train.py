"""Train SFTGAN: ``python train.py model=sftgan [key=value ...]`` (Hydra; configs in conf/).

A thin entry point: the ``@hydra.main`` wrapper is ``sftgan_lit.cli.train_main`` (also the
``sftgan-train`` console script) and the work is the plain ``sftgan_lit.train.train(cfg)``.
"""

from sftgan_lit.cli import train_main

if __name__ == "__main__":
    train_main()
