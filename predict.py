"""Super-resolve photos: ``python predict.py images=PATH [key=value ...]`` (Hydra; conf/predict.yaml).

A thin entry point: the wrapper is ``sftgan_lit.cli.predict_main`` (also ``sftgan-predict``) and the
work is the plain ``sftgan_lit.inference.predict.predict(cfg)``.
"""

from sftgan_lit.cli import predict_main

if __name__ == "__main__":
    predict_main()
