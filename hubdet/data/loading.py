"""``load_source``: the one entry point over local builders (``data_dir=``) and published copies (``repo_id=``).

The report of what was skipped is returned with the data (``ds.report``), never kept in a process-wide variable.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping
from typing import Any

from hubdet._core.errors import ConfigError
from hubdet.data._builder import get_source, prepare_local
from hubdet.data.debias import ReencodeConfig
from hubdet.data.example import PreparationReport
from hubdet.data.hub_sources import load_from_hub

_THIS_THREAD = threading.local()  # only for the deprecated last_report()


def load_source(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    *,
    repo_id: str | None = None,
    streaming: bool = False,
    reencode: ReencodeConfig | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Load source ``name`` in the hubdet schema, from a local ``data_dir`` or a Hub copy ``repo_id``.

    Returns a ``datasets.DatasetDict`` (or ``Dataset`` for one ``split``; the iterable variants when
    ``streaming``). ``reencode`` re-encodes every image of both classes the same way (a
    :class:`~hubdet.data.debias.ReencodeConfig` or a dict of its fields). ``options`` are the source's own,
    checked strictly. Files that cannot be used are skipped and listed in the returned dataset's ``report``
    (a :class:`~hubdet.data.example.PreparationReport`, also written as ``hubdet_report.json`` next to the cache).
    """
    if repo_id is not None:
        if data_dir is not None:
            raise ConfigError("give data_dir= or repo_id=, not both")
        ds = load_from_hub(name, repo_id, split, streaming=streaming, reencode=reencode, cache_dir=cache_dir,
                           **options)
    elif data_dir is None:
        raise ConfigError(f"source {name!r}: give data_dir= (a local copy laid out as {get_source(name).LAYOUT}) "
                          "or repo_id= (a copy published on the Hub)")
    else:
        ds = prepare_local(name, data_dir, split, streaming=streaming, reencode=reencode, cache_dir=cache_dir,
                           **options)
    _THIS_THREAD.report = ds.report
    return ds


def last_report() -> PreparationReport | None:
    """Deprecated: use the ``report`` of the dataset :func:`load_source` returned.

    Returns the report of the last :func:`load_source` call made by the calling thread (``None`` before the first).
    """
    warnings.warn("hubdet.data.last_report() is deprecated and will be removed; use the returned dataset's "
                  "`.report` instead", DeprecationWarning, stacklevel=2)
    return getattr(_THIS_THREAD, "report", None)
