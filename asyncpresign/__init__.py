"""asyncpresign: move data through S3 presigned URLs, fast and safely, with asyncio.

The :class:`Signer` holds the credentials and signs; the :class:`TransferEngine`
needs none and moves bytes through what was signed.
"""

from ._bulk import Filters, copy_objects, download_prefix, upload_tree
from ._engine import EngineStatistics, Timeout, TransferEngine
from ._exceptions import (
    AsyncPresignError,
    CredentialLifetimeError,
    HTTPStatusError,
    IntegrityError,
    InvalidArgumentError,
    ListingOrderError,
    LocalFileError,
    MetadataError,
    NoCredentialsError,
    RequestExpiredError,
    SigningError,
    SourceChangedError,
    TransferError,
    TransferTimeoutError,
    TransportError,
)
from ._manifest import Journal
from ._models import (
    BatchResult,
    Copy,
    Download,
    FilePart,
    OpenUpload,
    PresignedPost,
    PresignedRequest,
    ProgressEvent,
    TransferResult,
    Upload,
)
from ._plan import Plan
from ._retry import RetryPolicy
from ._signer import CredentialLifetimeWarning, Signer
from ._streams import DownloadStream
from ._sync import SyncResult, sync
from ._throttle import ThrottleState
from ._version import __version__

__all__ = [
    "AsyncPresignError",
    "BatchResult",
    "Copy",
    "CredentialLifetimeError",
    "CredentialLifetimeWarning",
    "Download",
    "DownloadStream",
    "EngineStatistics",
    "FilePart",
    "Filters",
    "HTTPStatusError",
    "IntegrityError",
    "InvalidArgumentError",
    "Journal",
    "ListingOrderError",
    "LocalFileError",
    "MetadataError",
    "NoCredentialsError",
    "OpenUpload",
    "Plan",
    "PresignedPost",
    "PresignedRequest",
    "ProgressEvent",
    "RequestExpiredError",
    "RetryPolicy",
    "Signer",
    "SigningError",
    "SourceChangedError",
    "SyncResult",
    "ThrottleState",
    "Timeout",
    "TransferEngine",
    "TransferError",
    "TransferResult",
    "TransferTimeoutError",
    "TransportError",
    "Upload",
    "__version__",
    "copy_objects",
    "download_prefix",
    "sync",
    "upload_tree",
]
