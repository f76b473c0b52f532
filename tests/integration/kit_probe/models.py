import sqlalchemy as sa

metadata = sa.MetaData()

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("coordination_id", sa.String(36), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
)
