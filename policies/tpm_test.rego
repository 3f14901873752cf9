package policy_test

import rego.v1

ak := "aa11"

pcr0 := "0f35c214608d93c7a6e68ae7359b4a8be5a0e99eea9107ece427c4dea4e439cf"

pcr7 := "3365d7fa2b024c852913c06e04ffbfa6ea5289f743bbf1a76f7ffdf21ed84793"

claims(trust) := {"tpm": {
	"ak_trust": trust,
	"ak_sha256": ak,
	"pcrs": {"sha256": {"0": pcr0, "7": pcr7}},
}}

refs := {"tpm_pcr0": [pcr0], "tpm_pcr7": ["00", pcr7]}

test_nothing_configured_fails_closed if {
	data.policy.executables == 33 with input as claims("none") with data.reference as {}
	data.policy.hardware == 97 with input as claims("none") with data.reference as {}
	data.policy.configuration == 36 with input as claims("none") with data.reference as {}
}

test_certificate_ak_and_known_pcrs_affirm if {
	data.policy.executables == 3 with input as claims("certificate") with data.reference as refs
	data.policy.hardware == 2 with input as claims("certificate") with data.reference as refs
	data.policy.configuration == 2 with input as claims("certificate") with data.reference as refs
}

test_enrolled_ak_affirms if {
	data.policy.hardware == 2 with input as claims("enrolled") with data.reference as refs
	data.policy.executables == 3 with input as claims("enrolled") with data.reference as refs
}

test_untrusted_ak_is_not_genuine_even_with_known_pcrs if {
	data.policy.hardware == 97 with input as claims("none") with data.reference as refs
	data.policy.executables == 33 with input as claims("none") with data.reference as refs
}

test_allowlisted_ak_fingerprint_is_trusted if {
	r := object.union(refs, {"tpm_ak_sha256": [ak]})
	data.policy.hardware == 2 with input as claims("none") with data.reference as r
	data.policy.executables == 3 with input as claims("none") with data.reference as r
}

test_trusted_ak_without_pcr_references_is_not_approved if {
	data.policy.hardware == 2 with input as claims("certificate") with data.reference as {}
	data.policy.executables == 33 with input as claims("certificate") with data.reference as {}
}

test_unknown_pcr_value_is_not_approved if {
	r := {"tpm_pcr0": ["11"], "tpm_pcr7": [pcr7]}
	data.policy.executables == 33 with input as claims("certificate") with data.reference as r
	data.policy.configuration == 36 with input as claims("certificate") with data.reference as r
}

test_referenced_pcr_not_quoted_is_not_approved if {
	r := object.union(refs, {"tpm_pcr9": ["00"]})
	data.policy.executables == 33 with input as claims("certificate") with data.reference as r
}

test_event_log_that_did_not_replay_is_not_approved if {
	c := {"tpm": object.union(claims("certificate").tpm, {"eventlog": [{}], "pcr_replay_ok": false})}
	data.policy.executables == 33 with input as c with data.reference as refs
}

test_event_log_that_replayed_is_approved if {
	c := {"tpm": object.union(claims("certificate").tpm, {"eventlog": [{}], "pcr_replay_ok": true})}
	data.policy.executables == 3 with input as c with data.reference as refs
}

# trustee's model: the EAR broker reads the AR4SI vector from trust_claims; no evidence and no reference values
# (query_reference_value answers null) must fail closed.
test_trust_claims_fail_closed_without_evidence_or_reference_values if {
	data.policy.trust_claims == {"executables": 33, "hardware": 97, "configuration": 36, "instance-identity": 0}
		with input as {}
		with data.reference as {}
}
