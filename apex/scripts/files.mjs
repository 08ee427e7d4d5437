// The files of a folder tree, shared by the apex/ checks (node_modules and dot-folders left out).
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Every file under dir, recursively; [] when dir does not exist.
 * @param {string} dir
 * @returns {string[]}
 */
export function walk(dir) {
    if (!existsSync(dir)) return [];
    return readdirSync(dir).flatMap((name) => {
        if (name === 'node_modules' || name.startsWith('.')) return [];
        const path = join(dir, name);
        return statSync(path).isDirectory() ? walk(path) : [path];
    });
}
