#!/bin/bash
# Static checks of the Kubernetes manifests in deploy/kubernetes/ (no
# cluster needed): tests/k8s_manifests.py with Debian's python3-yaml.
# Fails when no python3 with the yaml module is there: make deps installs it.
cd "$(dirname "$0")/.." || exit 1
for py in /usr/bin/python3 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import yaml' 2>/dev/null; then
        exec "$py" tests/k8s_manifests.py
    fi
done
echo "FAIL: no python3 with the yaml module (make deps installs python3-yaml)"
exit 1
