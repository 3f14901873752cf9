package policy_test

import rego.v1

mrtd := "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031"

zero := "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

rtmr0 := "e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288"

good := {"tdx": {
	"mr_td": mrtd,
	"rtmr": [rtmr0, zero, zero, zero],
	"mr_seam": zero,
	"mr_config_id": zero,
	"tcb_status": "UpToDate",
	"collateral_expired": false,
	"debug": false,
}}

refs := {"tdx_mr_td": [mrtd], "tdx_rtmr0": [rtmr0]}

test_good_td_affirms if {
	data.policy.executables == 3 with input as good with data.reference as refs
	data.policy.hardware == 2 with input as good with data.reference as refs
	data.policy.configuration == 2 with input as good with data.reference as refs
}

test_no_reference_values_fail_closed if {
	data.policy.executables == 33 with input as good with data.reference as {}
}

test_empty_input_fails_closed if {
	data.policy.executables == 33 with input as {} with data.reference as refs
	data.policy.hardware == 97 with input as {} with data.reference as refs
	data.policy.configuration == 36 with input as {} with data.reference as refs
}

test_unknown_mrtd if {
	data.policy.executables == 33 with input as good with data.reference as {"tdx_mr_td": [zero]}
}

test_rtmr_with_references_must_match if {
	data.policy.executables == 33 with input as good with data.reference as {"tdx_mr_td": [mrtd], "tdx_rtmr0": [zero]}
	data.policy.executables == 33 with input as good with data.reference as {"tdx_mr_td": [mrtd], "tdx_rtmr3": [rtmr0]}
}

test_debug_refused if {
	debug := json.patch(good, [{"op": "replace", "path": "/tdx/debug", "value": true}])
	data.policy.configuration == 36 with input as debug with data.reference as refs
}

test_out_of_date_is_a_warning if {
	old := json.patch(good, [{"op": "replace", "path": "/tdx/tcb_status", "value": "OutOfDate"}])
	data.policy.hardware == 32 with input as old with data.reference as refs
}

test_revoked_is_unrecognized if {
	revoked := json.patch(good, [{"op": "replace", "path": "/tdx/tcb_status", "value": "Revoked"}])
	data.policy.hardware == 97 with input as revoked with data.reference as refs
}

test_expired_collateral_not_affirmed if {
	stale := json.patch(good, [{"op": "replace", "path": "/tdx/collateral_expired", "value": true}])
	data.policy.hardware == 97 with input as stale with data.reference as refs
}

test_mr_config_id_reference if {
	data.policy.configuration == 36 with input as good with data.reference as {"tdx_mr_config_id": [mrtd]}
	data.policy.configuration == 2 with input as good with data.reference as {"tdx_mr_config_id": [zero]}
}

# trustee's model: the EAR broker reads the AR4SI vector from trust_claims; no evidence and no reference values
# (query_reference_value answers null) must fail closed.
test_trust_claims_fail_closed_without_evidence_or_reference_values if {
	data.policy.trust_claims == {"executables": 33, "hardware": 97, "configuration": 36, "instance-identity": 0}
		with input as {}
		with data.reference as {}
}
