"""Stages (``cfg.stages``, the default experiment's fidelity then GAN stage) obey the command line and the
debug group: a key set there wins in every stage, a key set for one stage (``stages.NAME.KEY=``) wins in
that stage, and a ``fast_dev_run`` stage hands its generator to the next one in memory."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from sftgan_lit.train import StageError, build_models, pinned_keys, stage_configs, train

from helpers import TINY, compose

# the default experiment (two stages and the report) at toy size: no stages=null here
TOY_STAGES = [*TINY, "report=null", "trainer.enable_progress_bar=false", "trainer.limit_val_batches=1"]


def _stages(overrides):
    cfg = compose([*TOY_STAGES, *overrides])
    return dict(stage_configs(cfg, pinned_keys(cfg)))


def test_a_command_line_key_wins_in_every_stage_and_a_stage_key_in_its_stage():
    # the demo's fidelity stage sets trainer.max_steps: 1200 of its own
    stages = _stages(["trainer.max_steps=6"])
    assert [s.trainer.max_steps for s in stages.values()] == [6, 6]
    stages = _stages(["trainer.max_steps=6", "stages.fidelity.trainer.max_steps=4"])
    assert {n: s.trainer.max_steps for n, s in stages.items()} == {"fidelity": 4, "gan": 6}
    # without the command line the stage's own value stands
    assert {n: s.trainer.max_steps for n, s in _stages([]).items()} == {"fidelity": 1200, "gan": 800}


@pytest.mark.parametrize("debug", ["limit", "fast_dev_run"])
def test_the_debug_group_wins_in_every_stage(debug):
    stages = _stages([f"debug={debug}"])
    for stage in stages.values():
        if debug == "limit":
            assert (stage.trainer.max_steps, stage.trainer.limit_train_batches) == (8, 2)
        else:
            assert stage.trainer.fast_dev_run is True
        assert stage.data.num_workers == 0


def test_a_fast_dev_run_stage_hands_its_generator_to_the_next_in_memory(tmp_path):
    overrides = [
        "debug=fast_dev_run",
        f"paths.output_dir={tmp_path}",
        "stages.fidelity.module.optimizer_g.lr=1e-2",
        # the GAN stage steps with a zero rate: its generator stays what it was given
        "+stages.gan.module.optimizer_g.lr=0.0",
    ]
    metrics, objects = train(compose([*TOY_STAGES, *overrides]))
    assert set(objects["stages"]) == {"fidelity", "gan"} and objects["exports"] == {}
    assert not list(tmp_path.glob("*.pth"))  # a fast_dev_run exports nothing
    first = objects["stages"]["fidelity"]["module"].eval_generator.state_dict()
    final = objects["stages"]["gan"]["module"].eval_generator.state_dict()
    assert all(torch.equal(first[k], final[k]) for k in first)
    # and the fidelity stage trained: its generator is not the seed's initialisation
    cfg = compose([*TOY_STAGES, *overrides])
    L.seed_everything(cfg.seed)
    init = build_models(cfg)["generator"].state_dict()
    assert any(not torch.equal(first[k], init[k]) for k in first)


def test_a_pinned_key_that_does_not_fit_a_stage_is_refused_naming_the_stage(tmp_path):
    # the fidelity stage trains G alone; GAN weights given for all stages cannot apply there
    cfg = compose([*TOY_STAGES, "debug=fast_dev_run", f"paths.output_dir={tmp_path}", "module.objective.w_gan=0.01"])
    with pytest.raises(StageError, match=r"^stage fidelity: .*module.objective.w_gan=0.*stages.fidelity.KEY=VALUE"):
        train(cfg)


def test_a_command_line_key_under_a_section_a_stage_nulls_applies_to_the_other_stages():
    """experiment=demo_real's bicubic stages set data.degradation: null; data.degradation.* set on the command line
    reaches the degradation-trained stages, and leaves the bicubic ones bicubic."""
    cfg = compose(["experiment=demo_real", "data.degradation.pool_size=16", "data.degradation.first.noise_range=[1,5]"])
    by_name = dict(stage_configs(cfg, pinned_keys(cfg)))
    assert by_name["fidelity"].data.degradation is None and by_name["gan"].data.degradation is None
    for name in ("real_fidelity", "real_gan"):
        assert by_name[name].data.degradation.pool_size == 16
        assert list(by_name[name].data.degradation.first.noise_range) == [1, 5]
