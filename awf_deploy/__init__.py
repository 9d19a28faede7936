"""awf_deploy: build a Worker bundle from a flow file and push it to Cloudflare."""

__all__: list[str] = []
