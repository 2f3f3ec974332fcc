#!/usr/bin/env node
// Compiles contracts/src/CustodyAnchor.sol with the pinned npm solc and writes the ABI and
// bytecode to ledger/chain/artifacts/CustodyAnchor.json, where the Python package loads them
// (so `pip install` needs no Node).
//
//   node build.js            write the artifact
//   node build.js --check    exit 1 if the committed artifact differs from a fresh compile
//   node build.js --out F    write the artifact to F instead (used by the artifacts test)
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

// py-evm's newest VM is Prague and solc >= 0.8.30 defaults to osaka: pin it.
const EVM_VERSION = "prague";
const OPTIMIZER_RUNS = 200;
const SOURCE = "src/CustodyAnchor.sol";
const CONTRACT = "CustodyAnchor";
const ARTIFACT = path.join(__dirname, "..", "ledger", "chain", "artifacts", `${CONTRACT}.json`);

function findImport(importPath) {
  const candidates = [path.join(__dirname, importPath), path.join(__dirname, "node_modules", importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

function compile() {
  const input = {
    language: "Solidity",
    sources: { [SOURCE]: { content: fs.readFileSync(path.join(__dirname, SOURCE), "utf8") } },
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      // No metadata hash: the bytecode then depends only on the sources and settings.
      metadata: { bytecodeHash: "none", appendCBOR: false },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  const warnings = (output.errors || []).filter((e) => e.severity !== "error");
  for (const w of warnings) process.stderr.write(w.formattedMessage + "\n");
  if (errors.length > 0) {
    for (const e of errors) process.stderr.write(e.formattedMessage + "\n");
    process.exit(2);
  }
  const contract = output.contracts[SOURCE][CONTRACT];
  const artifact = {
    contractName: CONTRACT,
    sourceName: SOURCE,
    compiler: { name: "solc", version: solc.version() },
    settings: { evmVersion: EVM_VERSION, optimizerRuns: OPTIMIZER_RUNS },
    abi: contract.abi,
    bytecode: "0x" + contract.evm.bytecode.object,
    deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
  };
  return JSON.stringify(artifact, null, 2) + "\n";
}

function main(argv) {
  const text = compile();
  if (argv.includes("--check")) {
    const committed = fs.existsSync(ARTIFACT) ? fs.readFileSync(ARTIFACT, "utf8") : "";
    if (committed !== text) {
      process.stderr.write(`${ARTIFACT} is stale: run \`node contracts/build.js\`\n`);
      process.exit(1);
    }
    return;
  }
  const outIndex = argv.indexOf("--out");
  const target = outIndex >= 0 ? argv[outIndex + 1] : ARTIFACT;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, text);
}

main(process.argv.slice(2));
