# Default attestation policy of Azure SEV-SNP confidential VMs (az-snp-vtpm). Fails closed: nothing is affirmed
# without reference values.
#   input["az-snp-vtpm"]: {"snp": <the snp claims>, "tpm": <the vTPM quote's claims>, "hcl": <runtime claims>}
# The verifier has already proved that the SNP report is signed by a VCEK chaining to AMD's ARK, comes from
# VMPL 0 (the paravisor) and binds the HCL runtime data; that the vTPM quote is signed by the AK of that runtime
# data, its PCRs match pcrDigest, extraData is the nonce binding and PCR8 the init-data.
#
# Reference values (query_reference_value(name), lists of strings):
#   az_snp_measurement       accepted MEASUREMENT values (the paravisor's launch digest; required)
#   snp_min_tcb_bootloader, snp_min_tcb_tee, snp_min_tcb_snp, snp_min_tcb_microcode (and snp_min_tcb_fmc on
#                            Turin): the same TCB floor as snp.rego, every one required
#   az_pcr0 .. az_pcr23      accepted lowercase hex values of that vTPM PCR (SHA-256 bank); at least one required,
#                            and every one named must match
#
# executables 3 (approved boot) when MEASUREMENT is listed and every referenced PCR matches, else 33.
# hardware 2 (genuine) when REPORTED_TCB meets every minimum, else 97.
# configuration 2 (approved) when the guest policy forbids DEBUG and a migration agent and the VM configuration
# has secure boot on, else 36.
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

default instance_identity := 0

cvm := object.get(input, "az-snp-vtpm", {})

snp := object.get(cvm, "snp", {})

# Reference values through trustee's built-in: the stored list of accepted values, or [] when none is stored
# (query_reference_value answers null then), so a missing reference value never matches.
references(name) := values if {
	values := query_reference_value(name)
	is_array(values)
} else := []

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
	snp.measurement in references("az_snp_measurement")
	pcrs_approved
}

meets_minimum(component) if {
	minimums := references(sprintf("snp_min_tcb_%s", [component]))
	count(minimums) > 0
	every minimum in minimums {
		snp.reported_tcb[component] >= to_number(minimum)
	}
}

# Read through object.get: regorus and OPA disagree on `not` over a missing snp.reported_tcb.
reported_tcb := object.get(snp, "reported_tcb", {})

fmc_ok if not "fmc" in object.keys(reported_tcb)

fmc_ok if meets_minimum("fmc")

hardware := 2 if {
	every component in ["bootloader", "tee", "snp", "microcode"] {
		meets_minimum(component)
	}
	fmc_ok
}

configuration := 2 if {
	snp.debug == false
	snp.migrate_ma == false
	cvm.hcl.vm_configuration["secure-boot"] == true
}

# The AR4SI vector, as trustee's EAR broker reads it.
trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
	"instance-identity": instance_identity,
}
