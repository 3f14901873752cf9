package policy_test

import rego.v1

device := {"sampledevice": {"svn": "2", "report_data": ""}}

test_unknown_svn_fails_closed if {
	data.policy.trust_claims == {"executables": 33, "hardware": 97, "configuration": 36} with input as device
		with data.reference as {}
}

test_known_svn_affirms if {
	data.policy.trust_claims == {"executables": 3, "hardware": 2, "configuration": 2} with input as device
		with data.reference as {"sampledevice_svn": ["2"]}
}

test_other_svn_not_affirmed if {
	data.policy.trust_claims.hardware == 97 with input as device with data.reference as {"sampledevice_svn": ["1"]}
}

test_scalar_reference_is_not_a_list_of_values if {
	data.policy.trust_claims.hardware == 97 with input as device with data.reference as {"sampledevice_svn": "2"}
}
