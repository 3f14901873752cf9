# The Veritee key broker image (the agent and guest tools are in it too, for tests).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libtss2-dev gcc pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kbs kbs
COPY kbs_protocol kbs_protocol
COPY verifier verifier
COPY policies policies
COPY guest guest
COPY attestation-agent attestation-agent
RUN pip install --no-cache-dir '.[kbs,tpm]'
RUN useradd --system --home /conf kbs
USER kbs
EXPOSE 8080
ENTRYPOINT ["kbs"]
CMD ["serve", "--config", "/conf/kbs.toml", "--host", "0.0.0.0", "--insecure-http"]
