export { reviewLabelsCli } from './cli.js';
export { runReviewLabels, type ReviewLabelsOptions, type ReviewLabelsResult } from './review-labels.js';
export { confidentLearning, type ConfidentLearning } from './confident-learning.js';
export { findIssues, ISSUE_KINDS, type Issue, type IssueKind } from './find-issues.js';
export { ISSUES_FILE, REVIEW_PAGE_FILE } from './issue-files.js';
