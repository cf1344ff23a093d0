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
    assert issubclass(asyncpresign.ListingOrderError, ValueError)
    assert issubclass(asyncpresign.TransportError, ConnectionError)
    assert issubclass(asyncpresign.TransferTimeoutError, TimeoutError)
    assert issubclass(asyncpresign.LocalFileError, OSError)
    assert issubclass(asyncpresign.RequestExpiredError, asyncpresign.HTTPStatusError)


def test_only_the_transport_module_imports_aiohttp() -> None:
    """One transport edge: the rest of the package never touches aiohttp types,
    and no module speaks HTTP on a socket of its own."""
    import ast
    from pathlib import Path

    package = Path(asyncpresign.__file__).parent
    importers = set()
    socket_users = set()
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] == "aiohttp" for name in names):
                importers.add(path.name)
            if any(name in {"socket", "ssl"} for name in names) or (
                isinstance(node, ast.Attribute)
                and node.attr in {"open_connection", "create_connection"}
            ):
                socket_users.add(path.name)
    assert importers == {"_transport.py"}
    assert socket_users <= {"_transport.py", "testing.py"}
