# Default attestation policy of Azure TDX confidential VMs (az-tdx-vtpm). Fails closed: nothing is affirmed
# without reference values.
#   input["az-tdx-vtpm"]: {"tdx": <the tdx claims>, "tpm": <the vTPM quote's claims>, "hcl": <runtime claims>}
# The verifier has already proved that the TD quote chains to Intel's root with its collateral, binds the HCL
# runtime data and signs the TDREPORT of the HCL report; that the vTPM quote is signed by the AK of that runtime
# data, its PCRs match pcrDigest, extraData is the nonce binding and PCR8 the init-data.
#
# Reference values (query_reference_value(name), lists of lowercase hex):
#   az_tdx_mr_td                 accepted MRTD values (the paravisor's; required)
#   az_tdx_rtmr0..az_tdx_rtmr3   accepted RTMR[i] values; an RTMR without reference values is not compared
#   az_tdx_mr_seam               accepted TDX module measurements (optional)
#   az_pcr0 .. az_pcr23          accepted values of that vTPM PCR (SHA-256 bank); at least one required, every one
#                                named must match
#
# executables 3 (approved boot) when MRTD, the referenced RTMRs and MRSEAM and every referenced PCR match, else 33.
# hardware 2 (genuine) when the TCB is UpToDate on unexpired collateral, 32 when it is degraded, else 97.
# configuration 2 (approved) when the TD is not a debug TD and the VM configuration has secure boot on, else 36.
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

default instance_identity := 0

cvm := object.get(input, "az-tdx-vtpm", {})

tdx := object.get(cvm, "tdx", {})

# Reference values through trustee's built-in: the stored list of accepted values, or [] when none is stored
# (query_reference_value answers null then), so a missing reference value never matches.
references(name) := values if {
	values := query_reference_value(name)
	is_array(values)
} else := []

optional_match(name, value) if count(references(name)) == 0

optional_match(name, value) if value in references(name)

pcr_prefix := "az_pcr"

pcr_references := {name: values |
	some i in numbers.range(0, 23)
	name := sprintf("%s%d", [pcr_prefix, i])
	values := references(name)
	count(values) > 0
}

pcrs_approved if {
	count(pcr_references) > 0
	every name, values in pcr_references {
		cvm.tpm.pcrs.sha256[trim_prefix(name, pcr_prefix)] in values
	}
}

executables := 3 if {
	tdx.mr_td in references("az_tdx_mr_td")
	every i in numbers.range(0, 3) {
		optional_match(sprintf("az_tdx_rtmr%d", [i]), tdx.rtmr[i])
	}
	optional_match("az_tdx_mr_seam", tdx.mr_seam)
	pcrs_approved
}

genuine_current_platform if {
	tdx.tcb_status == "UpToDate"
	tdx.collateral_expired == false
}

hardware := 2 if genuine_current_platform

hardware := 32 if {
	not genuine_current_platform
	tdx.tcb_status in {"SWHardeningNeeded", "ConfigurationNeeded", "ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"}
}

configuration := 2 if {
	tdx.debug == false
	cvm.hcl.vm_configuration["secure-boot"] == true
}

# The AR4SI vector, as trustee's EAR broker reads it.
trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
	"instance-identity": instance_identity,
}
