import type { CommandDef } from "citty";
import { MANAGED_IDENTITY_VARIABLES } from "../emulator/environment.ts";
import { DETECTION_ORDER, ManagedIdentityClient, SystemAssignedManagedIdentity } from "../index.ts";
import type { CliIo } from "../platform/cli-process.ts";
import { command } from "./command.ts";

/** Where Azure Arc's agent lives when it is installed (detection without env vars). */
const ARC_AGENT_FILES = [
  "/opt/azcmagent/bin/himds",
  "C:\\Program Files\\AzureConnectedMachineAgent\\himds.exe",
];

/** `managed-identity source`: which back-end the environment selects, and why. */
export const sourceCommand: CommandDef = command({
  meta: {
    name: "source",
    description:
      "Show which managed identity back-end this environment selects, and the variables and files that selected it (names only: values may be secrets).",
  },
  args: {
    json: { type: "boolean", description: "Print the result as JSON" },
  },
  run({ args, data }) {
    const io = data as CliIo;
    const client = new ManagedIdentityClient(new SystemAssignedManagedIdentity(), { env: io.env });
    const name = client.getManagedIdentitySource();
    const definition = DETECTION_ORDER.find((candidate) => candidate.name === name);
    const variables = MANAGED_IDENTITY_VARIABLES.filter((variable) => io.env[variable]);
    const files = ARC_AGENT_FILES.filter((path) => io.fileExists(path));
    const result = {
      source: name,
      label: definition?.label ?? name,
      selectedBy: definition?.selectedBy ?? "",
      variables,
      files,
      checked: DETECTION_ORDER.map((candidate) => candidate.name),
    };
    if (args.json) {
      io.out(JSON.stringify(result, null, 2));
      return;
    }
    io.out(`source: ${result.source} (${result.label})`);
    io.out(`selected by: ${result.selectedBy}`);
    io.out(`variables set: ${variables.length > 0 ? variables.join(", ") : "none"}`);
    if (files.length > 0) io.out(`agent files: ${files.join(", ")}`);
    io.out(`detection order: ${result.checked.join(" > ")}`);
  },
});
