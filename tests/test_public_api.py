import asyncpresign


def test_all_is_sorted_and_exactly_the_public_names() -> None:
    assert asyncpresign.__all__ == sorted(asyncpresign.__all__)
    assert asyncpresign.__all__ == [
        "AsyncPresignError",
        "BatchResult",
        "Copy",
        "CredentialLifetimeError",
        "CredentialLifetimeWarning",
        "Download",
        "EngineStatistics",
        "FilePart",
        "Filters",
        "HTTPStatusError",
        "IntegrityError",
        "InvalidArgumentError",
        "Journal",
        "LocalFileError",
        "NoCredentialsError",
        "PresignedPost",
        "PresignedRequest",
        "ProgressEvent",
        "RequestExpiredError",
        "RetryPolicy",
        "Signer",
        "SigningError",
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
        "upload_tree",
    ]


def test_every_public_name_resolves() -> None:
    for name in asyncpresign.__all__:
        assert getattr(asyncpresign, name) is not None


def test_every_exception_derives_from_the_root_and_its_builtin() -> None:
    root = asyncpresign.AsyncPresignError
    for name in asyncpresign.__all__:
        obj = getattr(asyncpresign, name)
        if isinstance(obj, type) and issubclass(obj, BaseException) and not issubclass(
            obj, Warning
        ):
            assert issubclass(obj, root), name
    assert issubclass(asyncpresign.InvalidArgumentError, ValueError)
    assert issubclass(asyncpresign.TransportError, ConnectionError)
    assert issubclass(asyncpresign.TransferTimeoutError, TimeoutError)
    assert issubclass(asyncpresign.LocalFileError, OSError)
    assert issubclass(asyncpresign.RequestExpiredError, asyncpresign.HTTPStatusError)
