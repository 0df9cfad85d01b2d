"""Fuzz every plugin's config model: a config shaped like a valid one (the right keys, wrong
types or values, keys dropped or added) either loads or raises a CNIError, never anything else.

Pure validation, no kernel and no files: path keys are fuzzed too.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycni.cni.errors import CNIError
from pycni.cni.version import SUPPORTED_VERSIONS
from pycni.registry import PLUGINS
from tests.cni import fuzz_inputs
from tests.helpers.fuzz import fuzz_settings

pytestmark = pytest.mark.fuzz


def test_every_base_config_is_valid() -> None:
    """The mutants start from configs that load, or the fuzz would test only the first error."""
    for plugin_type, ref in PLUGINS.items():
        conf = ref.load_conf_model().load(fuzz_inputs.config_of(plugin_type), "1.0.0")
        assert conf.name == fuzz_inputs.NAME


def load(plugin_type: str, raw: dict[str, Any], cni_version: str) -> None:
    """Load `raw` as the runner does; read what the verbs read first (prevResult)."""
    try:
        conf = PLUGINS[plugin_type].load_conf_model().load(raw, cni_version)
        assert conf.prev_result is None or conf.prev_result.cni_version == "1.1.0"
    except CNIError as err:
        assert err.code in (1, 2, 4, 6, 7), f"{type(err).__name__} {err.code}: {err.msg}"
        assert err.msg


@pytest.mark.parametrize("plugin_type", sorted(PLUGINS))
@fuzz_settings()
@given(data=st.data(), cni_version=st.sampled_from(SUPPORTED_VERSIONS))
def test_config_model_loads_or_raises_a_cni_error(
    plugin_type: str, data: st.DataObject, cni_version: str
) -> None:
    raw = data.draw(fuzz_inputs.mutants(fuzz_inputs.config_of(plugin_type, cni_version)), label="config")
    load(plugin_type, raw, cni_version)
