package policy_test

import rego.v1

test_unknown_svn_fails_closed if {
	data.policy.executables == 33 with input as {"sample": {"svn": "1"}} with data.reference as {}
	data.policy.hardware == 97 with input as {"sample": {"svn": "1"}} with data.reference as {}
}

test_known_svn_affirms if {
	data.policy.executables == 3 with input as {"sample": {"svn": "1"}} with data.reference as {"sample_svn": ["1"]}
	data.policy.hardware == 2 with input as {"sample": {"svn": "1"}} with data.reference as {"sample_svn": ["1"]}
}

test_other_svn_not_affirmed if {
	data.policy.executables == 33 with input as {"sample": {"svn": "2"}} with data.reference as {"sample_svn": ["1"]}
}

# trustee's model: the EAR broker reads the AR4SI vector from trust_claims; no evidence and no reference values
# (query_reference_value answers null) must fail closed.
test_trust_claims_fail_closed_without_evidence_or_reference_values if {
	data.policy.trust_claims == {"executables": 33, "hardware": 97, "configuration": 36, "instance-identity": 0}
		with input as {}
		with data.reference as {}
}
