"""Documentation templates (Da Vinci DTR): a questionnaire per policy pack, generated from the
pack's criteria, prepopulated from the chart, and read back as evidence when answered."""
