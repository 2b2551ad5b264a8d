// Report formats and writing them to --out.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunReport } from '../types.ts';
import { junitReport } from './junit.ts';
import { markdownReport } from './markdown.ts';

export const REPORT_FORMATS = ['console', 'json', 'junit', 'md'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

export const REPORT_FILES: Record<Exclude<ReportFormat, 'console'>, string> = {
  json: 'cpspec-report.json',
  junit: 'cpspec-junit.xml',
  md: 'cpspec-report.md',
};

export function jsonReport(report: RunReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** Writes the file reports; returns their paths. */
export function writeReports(report: RunReport, formats: ReportFormat[], outDir: string): string[] {
  const files: string[] = [];
  const wanted = formats.filter((f): f is Exclude<ReportFormat, 'console'> => f !== 'console');
  if (wanted.length === 0) return files;
  mkdirSync(outDir, { recursive: true });
  for (const f of wanted) {
    const path = join(outDir, REPORT_FILES[f]);
    const text = f === 'json' ? jsonReport(report) : f === 'junit' ? junitReport(report) : markdownReport(report);
    writeFileSync(path, text);
    files.push(path);
  }
  return files;
}
