"""`serve`: the web studio and REST API in one long-lived process."""

from __future__ import annotations

from agent.cli_input import UsageError


def cmd_serve(args, console) -> int:
    import uvicorn

    from agent.auth import check_auth_choice, read_keys
    from agent.flags import flag_fields
    from agent.server import ServerConfig, create_app

    keys = read_keys(args.api_keys)
    check_auth_choice(args.host, keys, args.no_auth)
    if not 1 <= args.workers <= 64:
        raise UsageError(f"--workers {args.workers}: give 1 to 64")
    base = {n: v for n in flag_fields("models") if (v := getattr(args, n, None)) is not None}
    config = ServerConfig(
        state_dir=args.state, base=base, workers=args.workers, keys=keys, no_auth=args.no_auth,
        worker_processes=max(1, min(args.worker_processes, args.workers)),
        rate_limit=args.rate_limit, max_queued=args.max_queued,
    )  # fmt: skip
    console.print(f"studio and API on http://{args.host}:{args.port}/ (docs at /docs); state in {args.state}")
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0
