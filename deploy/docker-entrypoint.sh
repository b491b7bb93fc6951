#!/usr/bin/env bash
# Entry point of the clusterconv image: `clusterconv-entrypoint VERB ARGS...`.
#  - Outside Kubernetes, POD_NAME defaults to the host name and POD_IP to the container's first
#    address, so docker compose and Kubernetes can pass the same arguments.
#  - Every $(NAME) in an argument is replaced by the value of the environment variable NAME when it
#    is set, as Kubernetes does for container args ($$(NAME) stays a literal $(NAME)).
#  - Then execs the tool (no shell stays in between: SIGTERM reaches the silo, which leaves the
#    cluster gracefully). CLUSTERCONV_EXEC overrides the command (tests run the entry point outside
#    the image with it).
set -euo pipefail

if [ -z "${POD_NAME:-}" ]; then
  POD_NAME="$(hostname)"
fi
if [ -z "${POD_IP:-}" ]; then
  POD_IP="$(hostname -i 2>/dev/null | tr ' ' '\n' | grep -v '^127\.' | grep -v ':' | head -n 1 || true)"
  POD_IP="${POD_IP:-127.0.0.1}"
fi
export POD_NAME POD_IP

expand() {
  local in="$1" out="" name
  while [ -n "$in" ]; do
    if [[ "$in" == '$$('* ]]; then
      out+='$('; in="${in:3}"
    elif [[ "$in" =~ ^\$\(([A-Za-z_][A-Za-z0-9_]*)\) ]]; then
      name="${BASH_REMATCH[1]}"
      if [ -n "${!name+x}" ]; then out+="${!name}"; else out+="\$($name)"; fi
      in="${in:${#BASH_REMATCH[0]}}"
    else
      out+="${in:0:1}"; in="${in:1}"
    fi
  done
  printf '%s' "$out"
}

args=()
for arg in "$@"; do
  args+=("$(expand "$arg")")
done

# shellcheck disable=SC2206 # CLUSTERCONV_EXEC is a command line, split on spaces on purpose
exec_cmd=(${CLUSTERCONV_EXEC:-dotnet /app/clusterconv.dll})
exec "${exec_cmd[@]}" "${args[@]}"
