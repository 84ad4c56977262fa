"""Evaluate checkpoints and priors: ``python eval.py images=PATH [key=value ...]`` (Hydra; conf/eval.yaml).

A thin entry point: the wrapper is ``sftgan_lit.cli.eval_main`` (also ``sftgan-eval``) and the work is
the plain ``sftgan_lit.inference.evaluate.evaluate(cfg)``.
"""

from sftgan_lit.cli import eval_main

if __name__ == "__main__":
    eval_main()
