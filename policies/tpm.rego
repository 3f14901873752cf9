# Default attestation policy of the TPM (input.tpm: the claims of docs/evidence.md). Fails closed.
#
# Reference values (query_reference_value(name) -> list of accepted values):
#   tpm_pcr0 .. tpm_pcr23   accepted lowercase hex values of that PCR in the SHA-256 bank. Every PCR named here
#                           must be quoted and match; at least one must be named, or nothing is approved.
#   tpm_ak_sha256           fingerprints (SHA-256 of the DER SubjectPublicKeyInfo) of AKs trusted by allowlist,
#                           for AKs that have neither a certificate nor an enrolment (trustee's model).
#
# The verifier has already checked the quote's signature, pcrDigest, the nonce binding, init-data in PCR8, and
# that an event log, when sent, replays to the quoted PCRs (pcr_replay_ok). This policy judges trust:
#   hardware 2 (genuine)          the AK is trusted: ak_trust "certificate" (chains to a TPM vendor root),
#                                 "enrolled" (credential activation against an EK), or an allowlisted ak_sha256
#   executables 3 (approved boot) trusted AK, every referenced PCR matches, no event log that failed to replay
#   configuration 2 (approved)    same as executables (PCR8 carries the init-data, checked by the verifier)
#   instance_identity 2           trusted AK
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

default instance_identity := 0

# Reference values through trustee's built-in: the stored list of accepted values, or [] when none is stored
# (query_reference_value answers null then), so a missing reference value never matches.
references(name) := values if {
	values := query_reference_value(name)
	is_array(values)
} else := []

pcr_prefix := "tpm_pcr"

trusted_ak if input.tpm.ak_trust in {"certificate", "enrolled"}

trusted_ak if input.tpm.ak_sha256 in references("tpm_ak_sha256")

pcr_references := {name: values |
	some i in numbers.range(0, 23)
	name := sprintf("%s%d", [pcr_prefix, i])
	values := references(name)
	count(values) > 0
}

pcrs_approved if {
	count(pcr_references) > 0
	every name, values in pcr_references {
		input.tpm.pcrs.sha256[trim_prefix(name, pcr_prefix)] in values
	}
}

# No event log, or one that replayed (the verifier refuses one that does not; this keeps the policy honest).
eventlog_ok if not input.tpm.eventlog

eventlog_ok if input.tpm.pcr_replay_ok == true

hardware := 2 if trusted_ak

instance_identity := 2 if trusted_ak

executables := 3 if {
	trusted_ak
	pcrs_approved
	eventlog_ok
}

configuration := 2 if {
	trusted_ak
	pcrs_approved
	eventlog_ok
}

# The AR4SI vector, as trustee's EAR broker reads it.
trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
	"instance-identity": instance_identity,
}
