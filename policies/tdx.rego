# Default TDX attestation policy (docs/tokens-and-policies.md). Fails closed: a TD is affirming only when its MRTD
# (and every RTMR that has reference values) is a provisioned reference value, its TCB is UpToDate on fresh
# collateral, and it is not a debug TD.
#   input.tdx: the claims of docs/evidence.md (mr_td, rtmr[0..3], tcb_status, debug, collateral_expired, ...)
#   reference values (query_reference_value(name), lists of lowercase hex):
#     tdx_mr_td              accepted MRTD values (required: no value, no affirmation)
#     tdx_rtmr0..tdx_rtmr3   accepted RTMR[i] values; an RTMR without reference values is not compared
#     tdx_mr_seam            accepted TDX module measurements (optional)
#     tdx_mr_config_id       accepted MRCONFIGID values (optional; init-data binding is checked by the verifier)
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

default instance_identity := 0

tdx := object.get(input, "tdx", {})

# Reference values through trustee's built-in: the stored list of accepted values, or [] when none is stored
# (query_reference_value answers null then), so a missing reference value never matches.
references(name) := values if {
	values := query_reference_value(name)
	is_array(values)
} else := []

# An optional reference: satisfied when no value is provisioned, else the claim must be one of them.
optional_match(name, value) if count(references(name)) == 0

optional_match(name, value) if value in references(name)

rtmr_ok(i) if optional_match(sprintf("tdx_rtmr%d", [i]), tdx.rtmr[i])

known_boot if {
	tdx.mr_td in references("tdx_mr_td")
	every i in numbers.range(0, 3) {
		rtmr_ok(i)
	}
	optional_match("tdx_mr_seam", tdx.mr_seam)
}

executables := 3 if known_boot

genuine_current_platform if {
	tdx.tcb_status == "UpToDate"
	tdx.collateral_expired == false
}

hardware := 2 if genuine_current_platform

# An out-of-date or otherwise degraded platform is genuine but not affirmed: a warning, not an approval.
hardware := 32 if {
	not genuine_current_platform
	tdx.tcb_status in {"SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"}
}

approved_configuration if {
	tdx.debug == false
	optional_match("tdx_mr_config_id", tdx.mr_config_id)
}

configuration := 2 if approved_configuration

# The AR4SI vector, as trustee's EAR broker reads it.
trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
	"instance-identity": instance_identity,
}
