"""The cldiag lab: small contrastive trainings on a laptop CPU that write normal cldiag runs.

- :mod:`cldiag.lab.data` -- offline data sets (digits with augmented views, image↔caption pairs, the
  Jing et al. toy, synthetic sets where raw inputs are poor for kNN).
- :mod:`cldiag.lab.models` -- tiny encoders.
- :mod:`cldiag.lab.trainer` -- :class:`LabConfig`, :func:`train`.
- :mod:`cldiag.lab.presets` -- the presets that reproduce published findings, :func:`run_preset`.
- :mod:`cldiag.lab.preset_checks` -- each preset's check: did the finding reproduce in its runs.
- :mod:`cldiag.lab.session` -- :class:`LabSession`, a training or preset in a background thread.
- :mod:`cldiag.lab.paths` -- where Lab runs go (``$CLDIAG_LAB_DIR``, default ``~/.cache/cldiag/lab-runs``).
- :mod:`cldiag.lab.view` -- what the Lab page shows: labels, the live figure, its caption, preset verdicts.
- :mod:`cldiag.lab.demo` -- :func:`make_sample_runs`, the bundled sample runs.

Importing this package is cheap; the submodules import torch.
"""
