"""The one place that talks to the Hugging Face Hub (datasets, models and results alike)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _api(endpoint: str | None = None, token: str | None = None):  # noqa: ANN202
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    commit_message: str = "Upload with hubdet",
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    path_in_repo: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` in one commit; return the commit URL."""
    if is_offline():
        raise RuntimeError(f"cannot push to {repo_id!r}: HF_HUB_OFFLINE is set")
    api = _api(endpoint, token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message,
        revision=revision,
        path_in_repo=path_in_repo,
    )
    url = str(getattr(info, "commit_url", info))
    logger.info("pushed %s to %s (%s)", folder, repo_id, url)
    return url


def local_or_snapshot(
    path_or_repo_id: str | Path, *, revision: str | None = None, repo_type: str = "model",
    allow_patterns: list[str] | None = None,
) -> Path:
    """A local folder as-is, or a Hub repository downloaded to the cache (respects ``HF_HUB_OFFLINE``; only the files
    matching ``allow_patterns`` when given). Raises :class:`~hubdet._core.errors.HubRepoError` saying why a repository
    could not be fetched (does not exist, unknown revision, gated, offline and not cached, network)."""
    from hubdet._core.errors import HubRepoError

    path = Path(path_or_repo_id)
    if path.exists():
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: expected a folder, found a file")
        return path
    text = str(path_or_repo_id)
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise FileNotFoundError(f"{text}: no such folder (and it is not a Hub repo id)")
    from huggingface_hub import errors, snapshot_download

    where = text + (f"@{revision}" if revision else "")
    try:
        return Path(snapshot_download(text, revision=revision, repo_type=repo_type, allow_patterns=allow_patterns,
                                      cache_dir=os.environ.get("HF_HUB_CACHE") or None))
    except errors.GatedRepoError as exc:
        raise HubRepoError(f"{where}: the Hub repository is gated; accept its terms and log in "
                           f"({type(exc).__name__})", "gated") from exc
    except errors.RepositoryNotFoundError as exc:
        raise HubRepoError(f"{where}: no such Hub {repo_type} repository (it does not exist, or it is private and "
                           "you are not logged in)", "not_found") from exc
    except errors.RevisionNotFoundError as exc:
        raise HubRepoError(f"{where}: the Hub repository has no revision {revision!r}", "revision") from exc
    except errors.LocalEntryNotFoundError as exc:
        if is_offline():
            raise HubRepoError(f"{where}: offline (HF_HUB_OFFLINE is set) and not in the local Hub cache",
                               "offline") from exc
        raise HubRepoError(f"{where}: the Hub could not be reached and the repository is not in the local cache "
                           f"({exc})", "network") from exc
    except Exception as exc:  # the Hub client raises many types; say what to check
        raise HubRepoError(f"{where}: not a local folder, and the Hub repository could not be fetched "
                           f"({type(exc).__name__}: {exc}); offline={is_offline()}", "network") from exc
