# Sourced by scripts/uv and scripts/test: make uv trust the system's CA bundle, as pip does.
#
# uv ships its own root certificates and ignores the system's, so behind a TLS-inspecting proxy (whose CA
# is in the system bundle, where pip finds it) every download fails with "invalid peer certificate:
# UnknownIssuer". Unless told otherwise (SSL_CERT_FILE, UV_SYSTEM_CERTS, UV_NATIVE_TLS), point uv at the
# system bundle: SSL_CERT_FILE works in every uv version, where the switch for the system's trust store was
# renamed (UV_NATIVE_TLS, deprecated since uv 0.11, became UV_SYSTEM_CERTS).
if [ -z "${SSL_CERT_FILE:-}" ] && [ -z "${UV_SYSTEM_CERTS:-}" ] && [ -z "${UV_NATIVE_TLS:-}" ]; then
  if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
  else
    export UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1  # the latter for uv before 0.11
  fi
fi
