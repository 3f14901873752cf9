// The output types of ocicrypt-rs's key-provider key wrapper (src/keywrap/keyprovider/mod.rs in
// confidential-containers/guest-components' ocicrypt-rs and containers/ocicrypt-rs), with their serde
// attributes as declared there. Reads a key provider's stdout on stdin as ocicrypt-rs does
// (serde_json::from_slice) and prints the unwrapped options (or the wrapped annotation) in hex; a document
// ocicrypt-rs cannot read exits 1 with serde's message.
use serde::{Deserialize, Serialize};
use std::io::Read;

#[derive(Serialize, Deserialize, Debug, Default)]
struct KeyUnwrapResults {
    #[serde(rename = "optsdata")]
    opts_data: Vec<u8>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct KeyWrapResults {
    annotation: Vec<u8>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct KeyProviderKeyWrapProtocolOutput {
    #[serde(rename = "keywrapresults", skip_serializing_if = "Option::is_none")]
    key_wrap_results: Option<KeyWrapResults>,
    #[serde(rename = "keyunwrapresults", skip_serializing_if = "Option::is_none")]
    key_unwrap_results: Option<KeyUnwrapResults>,
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{:02x}", b)).collect()
}

fn main() {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("read stdin");
    match serde_json::from_slice::<KeyProviderKeyWrapProtocolOutput>(&input) {
        Ok(output) => {
            if let Some(results) = output.key_unwrap_results {
                println!("optsdata {}", hex(&results.opts_data));
            }
            if let Some(results) = output.key_wrap_results {
                println!("annotation {}", hex(&results.annotation));
            }
        }
        Err(err) => {
            eprintln!("{}", err);
            std::process::exit(1);
        }
    }
}
