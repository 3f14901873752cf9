package policy_test

import rego.v1

mr_td := "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5"

pcr0 := "782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273"

good := {"az-tdx-vtpm": {
	"tdx": {
		"mr_td": mr_td,
		"rtmr": ["00", "01", "02", "03"],
		"mr_seam": "5e",
		"tcb_status": "UpToDate",
		"collateral_expired": false,
		"debug": false,
	},
	"tpm": {"pcrs": {"sha256": {"0": pcr0}}, "ak_trust": "hcl"},
	"hcl": {"vm_configuration": {"secure-boot": true}},
}}

reference := {"az_tdx_mr_td": [mr_td], "az_pcr0": [pcr0]}

test_known_cvm_affirms if {
	data.policy.executables == 3 with input as good with data.reference as reference
	data.policy.hardware == 2 with input as good with data.reference as reference
	data.policy.configuration == 2 with input as good with data.reference as reference
}

test_no_reference_values_fail_closed if {
	data.policy.executables == 33 with input as good with data.reference as {}
}

test_pcrs_are_required if {
	data.policy.executables == 33 with input as good with data.reference as {"az_tdx_mr_td": [mr_td]}
}

test_rtmr_reference_must_match if {
	rtmr := json.patch(reference, [{"op": "add", "path": "/az_tdx_rtmr2", "value": ["ff"]}])
	data.policy.executables == 33 with input as good with data.reference as rtmr
	ok := json.patch(reference, [{"op": "add", "path": "/az_tdx_rtmr2", "value": ["02"]}])
	data.policy.executables == 3 with input as good with data.reference as ok
}

test_out_of_date_is_a_warning if {
	old := json.patch(good, [{"op": "replace", "path": "/az-tdx-vtpm/tdx/tcb_status", "value": "OutOfDate"}])
	data.policy.hardware == 32 with input as old with data.reference as reference
}

test_expired_collateral_not_affirmed if {
	stale := json.patch(good, [{"op": "replace", "path": "/az-tdx-vtpm/tdx/collateral_expired", "value": true}])
	data.policy.hardware != 2 with input as stale with data.reference as reference
}

test_revoked_is_not_genuine if {
	revoked := json.patch(good, [{"op": "replace", "path": "/az-tdx-vtpm/tdx/tcb_status", "value": "Revoked"}])
	data.policy.hardware == 97 with input as revoked with data.reference as reference
}

test_debug_td_refused if {
	debug := json.patch(good, [{"op": "replace", "path": "/az-tdx-vtpm/tdx/debug", "value": true}])
	data.policy.configuration == 36 with input as debug with data.reference as reference
}

test_secure_boot_off_refused if {
	off := json.patch(good, [{"op": "replace", "path": "/az-tdx-vtpm/hcl/vm_configuration/secure-boot", "value": false}])
	data.policy.configuration == 36 with input as off with data.reference as reference
}

# trustee's model: the EAR broker reads the AR4SI vector from trust_claims; no evidence and no reference values
# (query_reference_value answers null) must fail closed.
test_trust_claims_fail_closed_without_evidence_or_reference_values if {
	data.policy.trust_claims == {"executables": 33, "hardware": 97, "configuration": 36, "instance-identity": 0}
		with input as {}
		with data.reference as {}
}
