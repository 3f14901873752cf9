# Default attestation policy of the sample TEE. The sample TEE has no hardware: it is affirming only when its svn
# is a provisioned reference value (data.reference.sample_svn), and the default resource policy refuses it anyway.
#   reference values: sample_svn (list of accepted svn strings)
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

known_svn if input.sample.svn in object.get(data.reference, "sample_svn", [])

executables := 3 if known_svn

hardware := 2 if known_svn

configuration := 2 if known_svn
