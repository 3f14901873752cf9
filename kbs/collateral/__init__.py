"""Collateral for the verifier from outside the evidence: files, Intel PCS/PCCS, AMD KDS.

The verifier does no I/O; these are the sources it is handed (`verifier.sources` defines their protocols):

    files.read_documents(paths)      collateral and certificate files, gathered as bytes (`Options.collateral`)
    pcs.PcsClient                    a TdxCollateralSource over Intel PCS v4 or a PCCS (`Options.tdx_collateral`)
    kds.KdsClient                    an SnpCertificateSource over AMD's KDS (`Options.snp_certificates`)

This package imports httpx and the verifier only (no FastAPI, SQLModel or pydantic). Import the module you need:
the package itself imports none of them.
"""
