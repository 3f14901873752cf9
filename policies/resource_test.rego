package policy_test

import rego.v1

affirming_tdx := {"submods": {"cpu0": {
	"ear.status": "affirming",
	"ear.veraison.annotated-evidence": {"tdx": {"mr_td": "00"}},
}}}

test_affirming_tdx_allowed if data.policy.allow with input as affirming_tdx

test_warning_denied if not data.policy.allow with input as {"submods": {"cpu0": {
	"ear.status": "warning",
	"ear.veraison.annotated-evidence": {"tdx": {}},
}}}

test_sample_denied_even_if_affirming if not data.policy.allow with input as {"submods": {"cpu0": {
	"ear.status": "affirming",
	"ear.veraison.annotated-evidence": {"sample": {"svn": "1"}},
}}}

test_no_submods_denied if not data.policy.allow with input as {"submods": {}}

test_missing_status_denied if not data.policy.allow with input as {"submods": {"cpu0": {
	"ear.veraison.annotated-evidence": {"snp": {}},
}}}

test_one_bad_submod_denies_all if not data.policy.allow with input as {"submods": {
	"cpu0": {"ear.status": "affirming", "ear.veraison.annotated-evidence": {"tdx": {}}},
	"gpu0": {"ear.status": "contraindicated", "ear.veraison.annotated-evidence": {"tdx": {}}},
}}

test_reasons_name_the_failure if {
	reasons := data.policy.reasons with input as {"submods": {"cpu0": {
		"ear.status": "warning",
		"ear.veraison.annotated-evidence": {"tdx": {}},
	}}}
	reasons == {"submod cpu0 is warning, not affirming"}
}

affirming_gpu(evidence) := {"ear.status": "affirming", "ear.veraison.annotated-evidence": evidence}

test_affirming_tdx_with_affirming_device_allowed if data.policy.allow with input as {"submods": {
	"cpu0": affirming_tdx.submods.cpu0,
	"gpu0": affirming_gpu({"nvgpu": {}}),
}}

test_sample_device_denied_even_if_affirming if not data.policy.allow with input as {"submods": {
	"cpu0": affirming_tdx.submods.cpu0,
	"gpu0": affirming_gpu({"sampledevice": {"svn": "2"}}),
}}

test_contraindicated_device_denies if not data.policy.allow with input as {"submods": {
	"cpu0": affirming_tdx.submods.cpu0,
	"gpu0": {"ear.status": "contraindicated", "ear.veraison.annotated-evidence": {"sampledevice": {}}},
}}
