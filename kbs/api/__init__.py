"""The broker's HTTP surface, one router per concern, each route a call to one service:

    rcar.router        POST /kbs/v0/auth, POST /kbs/v0/attest, GET /kbs/v0/resource/{repo}/{type}/{tag}
    tpm.router         POST /kbs/v0/tpm/enroll, POST /kbs/v0/tpm/activate
    admin.router       trustee's admin endpoints and Veritee's list/get/delete, behind an admin bearer JWT
    operations.router  /healthz, /readyz, /metrics, /.well-known/jwks.json

`schemas` holds the request and response bodies, `deps` the dependencies (services, admin authorisation, the
session cookie or bearer EAR, JSON and raw bodies), `errors` the error answers and `openapi` the document at
/openapi.json. `kbs.app.create_app` assembles them.
"""
