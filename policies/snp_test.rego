package policy_test

import rego.v1

measurement := "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"

good := {"snp": {
	"measurement": measurement,
	"reported_tcb": {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115},
	"debug": false,
	"migrate_ma": false,
	"vmpl": 0,
}}

reference := {
	"snp_measurement": [measurement],
	"snp_min_tcb_bootloader": ["3"],
	"snp_min_tcb_tee": ["0"],
	"snp_min_tcb_snp": ["8"],
	"snp_min_tcb_microcode": ["115"],
}

test_known_guest_affirms if {
	data.policy.executables == 3 with input as good with data.reference as reference
	data.policy.hardware == 2 with input as good with data.reference as reference
	data.policy.configuration == 2 with input as good with data.reference as reference
}

test_no_reference_values_fail_closed if {
	data.policy.executables == 33 with input as good with data.reference as {}
	data.policy.hardware == 97 with input as good with data.reference as {}
}

test_unknown_measurement if {
	other := json.patch(good, [{"op": "replace", "path": "/snp/measurement", "value": "00"}])
	data.policy.executables == 33 with input as other with data.reference as reference
}

test_microcode_below_minimum if {
	old := json.patch(good, [{"op": "replace", "path": "/snp/reported_tcb/microcode", "value": 114}])
	data.policy.hardware == 97 with input as old with data.reference as reference
}

test_missing_one_minimum_fails_closed if {
	partial := json.remove(reference, ["snp_min_tcb_tee"])
	data.policy.hardware == 97 with input as good with data.reference as partial
}

test_every_listed_minimum_must_hold if {
	two := json.patch(reference, [{"op": "replace", "path": "/snp_min_tcb_snp", "value": ["8", "9"]}])
	data.policy.hardware == 97 with input as good with data.reference as two
}

test_turin_needs_fmc_minimum if {
	turin := json.patch(good, [{"op": "add", "path": "/snp/reported_tcb/fmc", "value": 1}])
	data.policy.hardware == 97 with input as turin with data.reference as reference
	with_fmc := json.patch(reference, [{"op": "add", "path": "/snp_min_tcb_fmc", "value": ["1"]}])
	data.policy.hardware == 2 with input as turin with data.reference as with_fmc
}

test_debug_guest_refused if {
	debug := json.patch(good, [{"op": "replace", "path": "/snp/debug", "value": true}])
	data.policy.configuration == 36 with input as debug with data.reference as reference
}

test_migration_agent_refused if {
	ma := json.patch(good, [{"op": "replace", "path": "/snp/migrate_ma", "value": true}])
	data.policy.configuration == 36 with input as ma with data.reference as reference
}

test_vmpl_above_zero_refused if {
	vmpl := json.patch(good, [{"op": "replace", "path": "/snp/vmpl", "value": 1}])
	data.policy.configuration == 36 with input as vmpl with data.reference as reference
}

# trustee's model: the EAR broker reads the AR4SI vector from trust_claims; no evidence and no reference values
# (query_reference_value answers null) must fail closed.
test_trust_claims_fail_closed_without_evidence_or_reference_values if {
	data.policy.trust_claims == {"executables": 33, "hardware": 97, "configuration": 36, "instance-identity": 0}
		with input as {}
		with data.reference as {}
}
