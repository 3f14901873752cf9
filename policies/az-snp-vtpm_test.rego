package policy_test

import rego.v1

measurement := "6a063be9dd79f6371c842e480f8dc3b5c725961344e57130e88c5adf49e8f7f6c79b75a5eb77fc769959f4aeb2f9401e"

pcr0 := "e15c44796beabf46abcec7c57e590942041e47497e4ec27571c8b7664f48dced"

good := {"az-snp-vtpm": {
	"snp": {
		"measurement": measurement,
		"reported_tcb": {"bootloader": 4, "tee": 0, "snp": 24, "microcode": 219},
		"debug": false,
		"migrate_ma": false,
		"vmpl": 0,
	},
	"tpm": {"pcrs": {"sha256": {"0": pcr0, "8": "00"}}, "ak_trust": "hcl"},
	"hcl": {"vm_configuration": {"secure-boot": true, "tpm-enabled": true}},
}}

reference := {
	"az_snp_measurement": [measurement],
	"snp_min_tcb_bootloader": ["4"],
	"snp_min_tcb_tee": ["0"],
	"snp_min_tcb_snp": ["24"],
	"snp_min_tcb_microcode": ["219"],
	"az_pcr0": [pcr0],
}

test_known_cvm_affirms if {
	data.policy.executables == 3 with input as good with data.reference as reference
	data.policy.hardware == 2 with input as good with data.reference as reference
	data.policy.configuration == 2 with input as good with data.reference as reference
}

test_no_reference_values_fail_closed if {
	data.policy.executables == 33 with input as good with data.reference as {}
	data.policy.hardware == 97 with input as good with data.reference as {}
}

test_no_pcr_reference_fails_closed if {
	data.policy.executables == 33 with input as good with data.reference as json.remove(reference, ["az_pcr0"])
}

test_other_pcr_value if {
	other := json.patch(reference, [{"op": "add", "path": "/az_pcr8", "value": ["11"]}])
	data.policy.executables == 33 with input as good with data.reference as other
}

test_bare_snp_measurement_reference_does_not_count if {
	bare := json.patch(json.remove(reference, ["az_snp_measurement"]), [{"op": "add", "path": "/snp_measurement", "value": [measurement]}])
	data.policy.executables == 33 with input as good with data.reference as bare
}

test_tcb_below_floor if {
	old := json.patch(good, [{"op": "replace", "path": "/az-snp-vtpm/snp/reported_tcb/snp", "value": 23}])
	data.policy.hardware == 97 with input as old with data.reference as reference
}

test_debug_guest_refused if {
	debug := json.patch(good, [{"op": "replace", "path": "/az-snp-vtpm/snp/debug", "value": true}])
	data.policy.configuration == 36 with input as debug with data.reference as reference
}

test_secure_boot_off_refused if {
	off := json.patch(good, [{"op": "replace", "path": "/az-snp-vtpm/hcl/vm_configuration/secure-boot", "value": false}])
	data.policy.configuration == 36 with input as off with data.reference as reference
}

test_other_tee_input_fails_closed if {
	other := {"snp": good["az-snp-vtpm"].snp}
	data.policy.executables == 33 with input as other with data.reference as reference
	data.policy.hardware == 97 with input as other with data.reference as reference
	data.policy.configuration == 36 with input as other with data.reference as reference
}

# trustee's model: the EAR broker reads the AR4SI vector from trust_claims; no evidence and no reference values
# (query_reference_value answers null) must fail closed.
test_trust_claims_fail_closed_without_evidence_or_reference_values if {
	data.policy.trust_claims == {"executables": 33, "hardware": 97, "configuration": 36, "instance-identity": 0}
		with input as {}
		with data.reference as {}
}
