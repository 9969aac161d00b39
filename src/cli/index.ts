#!/usr/bin/env node
import { currentProcess, processIo } from "../platform/cli-process.ts";
/**
 * The `managed-identity` command: `token`, `source` and `emulate`. See `managed-identity --help`.
 * @module
 */
import { main } from "./main.ts";

const process = currentProcess();
process.exitCode = await main(process.argv.slice(2), processIo(process));
