# Default attestation policy of the sample device (class gpu, EAR submod gpu0): trustee's stand-in for a GPU.
# Fails closed: the device is affirming only when its svn is a provisioned reference value.
#   input.sampledevice: {svn, report_data}
#   reference values (query_reference_value(name), lists of strings):
#     sampledevice_svn   accepted svn values (required: no value, no affirmation)
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

# Reference values through trustee's built-in: the stored list of accepted values, or [] when none is stored.
references(name) := values if {
	values := query_reference_value(name)
	is_array(values)
} else := []

known_svn if input.sampledevice.svn in references("sampledevice_svn")

executables := 3 if known_svn

hardware := 2 if known_svn

configuration := 2 if known_svn

# The AR4SI vector, as trustee's EAR broker reads it.
trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
}
