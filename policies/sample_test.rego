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
