#!/usr/bin/env node
/**
 * The `managed-identity` command: `token`, `source` and `emulate`. See `managed-identity --help`.
 * @module
 */
import { main } from "./main.ts";
import { currentProcess, processIo } from "./process.ts";

const process = currentProcess();
process.exitCode = await main(process.argv.slice(2), processIo(process));
