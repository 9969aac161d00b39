import { type ArgsDef, type CommandDef, defineCommand } from "citty";

/**
 * `defineCommand` with the arguments' types kept inside `run` but erased from the export: the
 * declaration file must not depend on inferred types (isolatedDeclarations), and a command with
 * typed arguments is not assignable to citty's plain `CommandDef` because `run` is contravariant.
 */
export function command<const T extends ArgsDef>(definition: CommandDef<T>): CommandDef {
  return defineCommand(definition) as unknown as CommandDef;
}
