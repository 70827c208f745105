module.exports = ({ vars }) => `Summarize: ${vars.article}`;
