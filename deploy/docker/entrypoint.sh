#!/bin/sh
# The image's entrypoint (deploy/docker/Dockerfile): `smci` with the container's
# arguments, so `docker run IMAGE run` is `smci run` and `docker run IMAGE` shows
# `smci --help`. The other programs the same image runs in the Kubernetes
# manifests (the Dask scheduler and workers, JupyterLab) and debugging shells
# start as themselves when the first argument names them.
case "${1:-}" in
dask | jupyter | python | python3 | bash | sh)
    exec "$@"
    ;;
esac
exec smci "$@"
